"""Turning a local request into a hosted one: hosted fields only, every media input a public URL.

The hosted API fetches media itself, so a local file needs a URL it can reach: one the user pasted, or
this app's own public base URL (share link, Space, or LIPSYNC_PUBLIC_URL) serving the file for a while.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit

from pydantic import BaseModel

from .. import kinds
from ..errors import InputError

MEDIA_FIELDS = kinds.MEDIA_FIELDS
# Local extras of lipsync.requests that the hosted formState does not have.
# The hosted API truncates or extends by its own rule: `length_mode` is not sent (the cost line says so).
LOCAL_ONLY = ("model", "engine", "transcript", "face_index", "left_transcript", "right_transcript",
              "left_face", "right_face", "length_mode", "keep_background", "compare")
NO_PUBLIC_URL = ("the hosted API needs a public URL for a local file: paste a URL, run the app with a share "
                 "link, or set LIPSYNC_PUBLIC_URL to this app's public address")


def is_url(value: str) -> bool:
    return urlsplit(str(value)).scheme in ("http", "https")


def public_base_url(public_base: Optional[str] = None) -> Optional[str]:
    """The app's public address: the one given (share link, Space URL), else LIPSYNC_PUBLIC_URL."""
    base = (public_base or os.environ.get("LIPSYNC_PUBLIC_URL") or "").strip().rstrip("/")
    return base or None


def public_media_url(value: str, field: str, public_base: Optional[str] = None, *, ttl: float = 3600.0) -> str:
    """A URL the hosted API can fetch for `value`; InputError(field, ...) when there is none.
    Local files are served by this app (`/api/v1/media/<token>/...`) for `ttl` seconds."""
    if is_url(value):
        return value
    base = public_base_url(public_base)
    if base is None:
        raise InputError(field, NO_PUBLIC_URL)
    from ..server.links import share_file

    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(field, f"file not found: {path}")
    return base + share_file(path, ttl=ttl)


def hosted_form_state(request: Union[BaseModel, dict], public_base: Optional[str] = None) -> dict:
    """The hosted `formState` for a local request (or formState dict): local extras dropped,
    media as public URLs."""
    data = request.model_dump(exclude_none=True) if isinstance(request, BaseModel) else \
        {k: v for k, v in request.items() if v is not None}
    state = {k: v for k, v in data.items() if k not in LOCAL_ONLY}
    for field in MEDIA_FIELDS:
        if state.get(field):
            state[field] = public_media_url(str(state[field]), field, public_base)
    return state


def mirror_available(request: Union[BaseModel, dict], public_base: Optional[str] = None) -> Optional[str]:
    """None if the request can be mirrored, else the reason to show instead (naming the field)."""
    data = request.model_dump(exclude_none=True) if isinstance(request, BaseModel) else request
    if public_base_url(public_base):
        return None
    for field in MEDIA_FIELDS:
        value = data.get(field)
        if value and not is_url(str(value)):
            return str(InputError(field, NO_PUBLIC_URL))
    return None
