"""The local REST API (same contract as the hosted Lipsync API), its keys and its job queue."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Optional

from .settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def create_app(settings: Optional[ServerSettings] = None, **kwargs) -> "FastAPI":
    """FastAPI app serving /api/v1/...; see `lipsync.server.app.create_app`."""
    from .app import create_app as _create

    return _create(settings, **kwargs)


def is_loopback(host: str) -> bool:
    host = (host or "").strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_warnings(host: str, share: bool, auth: Optional[str]) -> list[str]:
    """What to tell the user at start-up about exposure: a shared or non-loopback UI without a password,
    and SSRF protection switched off while reachable from elsewhere. The API always needs a key."""
    warnings = []
    exposed = share or not is_loopback(host)
    where = "through a public share link" if share else f"on {host}, reachable from other machines"
    if exposed and not auth:
        warnings.append(f"the UI is served {where} without a password: anyone who reaches it can run jobs "
                        "and see your history; set --auth USER:PASSWORD (the API needs a key regardless)")
    if exposed and ServerSettings.from_env().allow_private_urls:
        warnings.append("LIPSYNC_ALLOW_PRIVATE_URLS=1 while the app is reachable from elsewhere: API clients can "
                        "make this machine fetch from your private network; unset it unless you trust every key")
    return warnings


__all__ = ["ServerSettings", "create_app", "is_loopback", "startup_warnings"]
