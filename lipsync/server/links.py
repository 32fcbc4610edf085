"""URLs this server hands out: signed, expiring links to outputs, and the public job object that carries them."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .db import connect
from .store import ServerJob

API_PREFIX = "/api/v1"


def file_signature(secret: str, name: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"file:{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def output_url(base_url: str, job_id: str, secret: str, ttl: float) -> str:
    """A download link that works without the Authorization header (like the hosted API's output URLs),
    because it is signed: knowing a job id alone is not enough. It works for `ttl` seconds."""
    name = f"{job_id}.mp4"
    expires = int(time.time() + ttl)
    return f"{base_url.rstrip('/')}{API_PREFIX}/files/{name}?exp={expires}&sig={file_signature(secret, name, expires)}"


def signed_link_ok(secret: str, name: str, exp: str, sig: str) -> bool:
    """True if `sig` signs `name` until `exp` and `exp` has not passed."""
    if not (exp.isascii() and exp.isdigit() and len(exp) <= 12 and sig):
        return False
    if int(exp) < time.time():
        return False
    return hmac.compare_digest(sig.encode(), file_signature(secret, name, int(exp)).encode())


def public_job(job: ServerJob, base_url: str, secret: str, ttl: float) -> dict:
    """The hosted API's job object, with `output` a fresh link instead of a local path."""
    data = job.record.public()
    data["output"] = output_url(base_url, job.id, secret, ttl) if job.record.status == "completed" else None
    return data


def share_file(path: Path, *, ttl: float = 3600.0, home: Optional[Path] = None) -> str:
    """Serve a local file at an unguessable path for `ttl` seconds; returns "/api/v1/media/<token>/<name>".

    Prefix it with the app's public base URL (share link, Space, LIPSYNC_PUBLIC_URL) to give the hosted
    API a URL it can fetch: this is how the UI mirrors jobs made from local files."""
    path = Path(path).resolve()
    if not path.is_file():
        raise InputError("file", f"file not found: {path}")
    token = secrets.token_urlsafe(24)
    now = time.time()
    with connect(home) as conn:
        conn.execute("DELETE FROM shared_files WHERE expires < ?", (now,))
        conn.execute("INSERT INTO shared_files (token, path, expires) VALUES (?, ?, ?)", (token, str(path), now + ttl))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name) or "file"
    return f"{API_PREFIX}/media/{token}/{name}"


def shared_file(token: str, *, home: Optional[Path] = None) -> Optional[Path]:
    """The file behind a `share_file` token, if the token is known and not expired."""
    with connect(home) as conn:
        row = conn.execute("SELECT path FROM shared_files WHERE token = ? AND expires >= ?",
                           (token, time.time())).fetchone()
    return Path(row["path"]) if row and Path(row["path"]).is_file() else None
