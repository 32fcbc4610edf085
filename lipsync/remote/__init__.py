"""Client for the hosted Lipsync API (`HostedClient`) and helpers to mirror local jobs there.

Names load on first use (PEP 562): the CLI registers `lipsync remote ...` on every run, and only a remote
command should pay for httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_API_URL": "client",
    "HostedClient": "client",
    "RemoteError": "client",
    "api_base": "client",
    "hosted_form_state": "mirror",
    "mirror_available": "mirror",
    "public_base_url": "mirror",
    "public_media_url": "mirror",
}

if TYPE_CHECKING:
    from .client import DEFAULT_API_URL, HostedClient, RemoteError, api_base
    from .mirror import hosted_form_state, mirror_available, public_base_url, public_media_url


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
