"""API keys for the local REST API, shaped like the hosted ones: ``sk_XXXX_YYYY``.

XXXX is the key's public id (shown in lists), YYYY its secret part. Only a SHA-256 hash of the whole
key is stored: keys are long random strings, so a fast hash is enough and a stolen database reveals
none. Each key also has a webhook signing secret, kept in clear because the server needs it to sign.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .db import connect

KEY_RE = re.compile(r"^sk_([0-9a-f]{8})_([A-Za-z0-9]{32})$")
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class KeyInfo:
    id: str  # the XXXX part of the key
    name: Optional[str]
    created: str  # ISO 8601, UTC
    prefix: str  # "sk_XXXX": recognises a key without revealing it
    # Signs webhook bodies of jobs submitted with this key (header X-Lipsync-Signature).
    webhook_secret: str = field(repr=False, default="")

    def public(self) -> dict:
        """Everything but the webhook secret, for lists and logs."""
        data = asdict(self)
        data.pop("webhook_secret")
        return data


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _info(row) -> KeyInfo:
    return KeyInfo(id=row["id"], name=row["name"], created=row["created"], prefix=f"sk_{row['id']}",
                   webhook_secret=row["webhook_secret"])


def create_key(name: Optional[str] = None, *, home: Optional[Path] = None) -> tuple[str, KeyInfo]:
    """Make a key; the returned key string is the only time it exists in clear."""
    name = (name or "").strip() or None
    if name is not None and (KEY_RE.match(name) or name.startswith("sk_")):
        raise InputError("name", "must not look like a key")
    with connect(home) as conn:
        if name is not None and conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
            raise InputError("name", f"a key named {name!r} already exists")
        while True:
            key_id = secrets.token_hex(4)
            if not conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone():
                break
        key = f"sk_{key_id}_{''.join(secrets.choice(_ALPHABET) for _ in range(32))}"
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        conn.execute("INSERT INTO api_keys (id, name, hash, webhook_secret, created) VALUES (?, ?, ?, ?, ?)",
                     (key_id, name, _hash(key), f"whsec_{secrets.token_hex(24)}", created))
        row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return key, _info(row)


def list_keys(*, home: Optional[Path] = None) -> list[KeyInfo]:
    with connect(home) as conn:
        return [_info(row) for row in conn.execute("SELECT * FROM api_keys ORDER BY rowid")]


def get_key(key_id: str, *, home: Optional[Path] = None) -> Optional[KeyInfo]:
    with connect(home) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return _info(row) if row else None


def verify_key(key: Optional[str], *, home: Optional[Path] = None) -> Optional[KeyInfo]:
    """The key's info if it is valid (well formed, known, not revoked), else None."""
    match = KEY_RE.match((key or "").strip())
    if not match:
        return None
    with connect(home) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (match.group(1),)).fetchone()
    if row is None or not hmac.compare_digest(row["hash"], _hash(match.group(0))):
        return None
    return _info(row)


def revoke_key(key_or_name: str, *, home: Optional[Path] = None) -> bool:
    """Revoke by the full key, its prefix ("sk_XXXX"), its id ("XXXX") or its name. True if one was revoked."""
    value = (key_or_name or "").strip()
    if not value:
        return False
    match = KEY_RE.match(value)
    with connect(home) as conn:
        if match:
            info = verify_key(value, home=home)
            if info is None:
                return False
            cursor = conn.execute("DELETE FROM api_keys WHERE id = ?", (info.id,))
        else:
            key_id = value[3:] if re.fullmatch(r"sk_[0-9a-f]{8}", value) else value
            cursor = conn.execute("DELETE FROM api_keys WHERE name = ?", (value,))
            if cursor.rowcount == 0:
                cursor = conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        return cursor.rowcount > 0
