"""Turn a media field (local path or http(s) URL) into a local file."""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..errors import InputError

if TYPE_CHECKING:
    import httpx  # imported by _download: a job on local files never needs it

_CHUNK = 1 << 16
# mimetypes knows these poorly or not at all on minimal systems.
_EXT_BY_TYPE = {
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/aac": ".aac",
    "audio/webm": ".webm",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/gif": ".gif",
}


def resolve(
    value: str,
    field: str,
    workdir: Path,
    *,
    max_bytes: int = 1 << 30,
    timeout: float = 60.0,
    allow_private: bool = True,
) -> Path:
    """Return a local file for ``value``: an existing path, or a URL downloaded into ``workdir``."""
    value = (value or "").strip()
    if not value:
        raise InputError(field, "is empty; expected a file path or an http(s) URL")
    scheme = urlsplit(value).scheme.lower() if "://" in value else ""
    if scheme in ("http", "https"):
        return _download(value, field, Path(workdir), max_bytes=max_bytes, timeout=timeout, allow_private=allow_private)
    if scheme == "file":
        return _local(Path(unquote(urlsplit(value).path)), field)
    if scheme:
        raise InputError(field, f"unsupported URL scheme {scheme!r}; use a local file path or an http(s) URL")
    return _local(Path(value).expanduser(), field)


def _local(path: Path, field: str) -> Path:
    if not path.exists():
        raise InputError(field, f"file not found: {path}")
    if path.is_dir():
        raise InputError(field, f"is a folder, not a file: {path}")
    if path.stat().st_size == 0:
        raise InputError(field, "file is empty")
    return path


def _mb(n: int) -> str:
    return f"{n / (1 << 20):g}"


def _filename(url: httpx.URL, content_type: str) -> str:
    name = unquote(url.path.rsplit("/", 1)[-1])
    # Keep names portable and harmless: letters, digits, dot, dash, underscore.
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "download"
    if not Path(name).suffix:
        mime = content_type.split(";")[0].strip().lower()
        name += _EXT_BY_TYPE.get(mime) or mimetypes.guess_extension(mime) or ""
    return name


def _unique(path: Path) -> Path:
    stem, suffix, n = path.stem, path.suffix, 1
    while path.exists():
        path = path.with_name(f"{stem}-{n}{suffix}")
        n += 1
    return path


def _download(url: str, field: str, workdir: Path, *, max_bytes: int, timeout: float, allow_private: bool) -> Path:
    import httpx

    from .addresses import PinnedTransport

    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    fd, tmp_name = tempfile.mkstemp(dir=workdir, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        # The transport checks the address of the first request and of every redirect target, and
        # connects to the address it checked.
        transport = PinnedTransport(field, allow_private=allow_private)
        with os.fdopen(fd, "wb") as out, httpx.Client(
            follow_redirects=True, timeout=timeout, transport=transport
        ) as client, client.stream("GET", url) as response:
            if response.status_code >= 400:
                reason = response.reason_phrase or ""
                raise InputError(field, f"could not download URL: HTTP {response.status_code} {reason}".rstrip())
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise InputError(field, f"download is larger than {_mb(max_bytes)} MB")
            size = 0
            for chunk in response.iter_bytes(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(field, f"download is larger than {_mb(max_bytes)} MB")
                if time.monotonic() > deadline:
                    raise InputError(field, f"could not download URL: timed out after {timeout:g} s")
                out.write(chunk)
            final_url, content_type = response.url, response.headers.get("content-type", "")
        if size == 0:
            raise InputError(field, "downloaded file is empty")
        dest = _unique(workdir / _filename(final_url, content_type))
        os.replace(tmp, dest)
        return dest
    except InputError:
        tmp.unlink(missing_ok=True)
        raise
    except httpx.TimeoutException:
        tmp.unlink(missing_ok=True)
        raise InputError(field, f"could not download URL: timed out after {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(field, f"could not download URL: {_short_reason(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _short_reason(exc: Exception) -> str:
    import httpx

    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        text = f"connection failed ({text})"
    return text.splitlines()[0][:200]
