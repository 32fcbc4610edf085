"""Server settings, read once from the environment when the app is created."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a number") from None


@dataclass(frozen=True)
class ServerSettings:
    workers: int = 1  # jobs rendered at once; each render already uses every core
    # Trusted local use and tests only: media URLs and http:// webhooks may point to private addresses.
    allow_private_urls: bool = False
    max_media_bytes: int = 500 << 20  # per media input, downloaded or uploaded
    fetch_timeout: float = 120.0  # seconds per media download
    webhook_attempts: int = 6
    webhook_backoff: float = 2.0  # seconds before the first retry, doubled each time
    webhook_timeout: float = 15.0  # seconds per connect, read or write of one delivery attempt
    public_url: Optional[str] = None  # base for `output` URLs when behind a proxy (else the request's)
    link_ttl: float = 24 * 3600.0  # seconds a signed `output` link works; GET /jobs/{id} gives a fresh one
    # Wrong keys, link signatures or media tokens: a client (IP) may fail `auth_failures` times in a burst,
    # then one more time every `auth_failure_decay` seconds; beyond that it gets 429 with Retry-After.
    auth_failures: int = 10
    auth_failure_decay: float = 6.0

    @classmethod
    def from_env(cls) -> "ServerSettings":
        """LIPSYNC_WORKERS, LIPSYNC_ALLOW_PRIVATE_URLS=1, LIPSYNC_MAX_MEDIA_MB, LIPSYNC_FETCH_TIMEOUT,
        LIPSYNC_PUBLIC_URL, LIPSYNC_LINK_HOURS."""
        return cls(
            workers=max(1, int(_number("LIPSYNC_WORKERS", 1))),
            allow_private_urls=_flag("LIPSYNC_ALLOW_PRIVATE_URLS"),
            max_media_bytes=int(_number("LIPSYNC_MAX_MEDIA_MB", 500) * (1 << 20)),
            fetch_timeout=_number("LIPSYNC_FETCH_TIMEOUT", 120.0),
            public_url=os.environ.get("LIPSYNC_PUBLIC_URL", "").strip().rstrip("/") or None,
            link_ttl=_number("LIPSYNC_LINK_HOURS", 24.0) * 3600.0,
        )
