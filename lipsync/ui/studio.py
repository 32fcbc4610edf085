"""What one running studio knows beyond a single request: its limits, its public URL and the cancel flags
of running jobs. Cheap to import: no Gradio, no media libraries."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import config

# Cancel flags of jobs that were started but never ran (validation refused them) are dropped past this.
_MAX_FLAGS = 256


@dataclass(frozen=True)
class Limits:
    """Per-job limits. On a shared Hugging Face Space they are smaller, so one user can't hold the queue."""

    max_seconds: Optional[float] = None  # longest audio (output) per job; None = no limit
    queue_size: Optional[int] = None  # jobs waiting at once; None = unbounded
    max_file_size: Optional[str] = None  # per upload, in Gradio's notation ("50mb")
    allow_720p: bool = True


def on_space() -> bool:
    """Running as a Hugging Face Space (the Space runtime sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def default_limits() -> Limits:
    if on_space():
        return Limits(max_seconds=60.0, queue_size=16, max_file_size="50mb")
    return Limits()


def env_public_url() -> Optional[str]:
    """A public base URL this app is reachable at, from the environment: LIPSYNC_PUBLIC_URL, or a Space's host."""
    url = os.environ.get("LIPSYNC_PUBLIC_URL", "").strip()
    if url:
        return url.rstrip("/")
    host = os.environ.get("SPACE_HOST", "").strip()
    return f"https://{host}" if host else None


@dataclass
class Studio:
    """State shared by every session of one app process."""

    limits: Limits = field(default_factory=default_limits)
    # Set by app.py once a share link is up; the environment's URL otherwise.
    share_url: Optional[str] = None
    mirror_poll_s: float = 5.0  # how often a mirrored job is polled on the hosted API
    assets: Path = field(default_factory=lambda: Path(__file__).resolve().parents[2] / "assets")
    # Gradio's upload cache (GRADIO_TEMP_DIR): the only place files sent by a browser may come from.
    upload_dir: Path = field(default_factory=lambda: gradio_cache_dir())
    _flags: "OrderedDict[str, threading.Event]" = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)

    @property
    def public_url(self) -> Optional[str]:
        return (self.share_url or "").rstrip("/") or env_public_url()

    # -- cancelling ------------------------------------------------------------------------------

    def new_job_token(self) -> str:
        """A fresh id for one click of Generate; Cancel finds the job's flag by it."""
        token = uuid.uuid4().hex
        with self._lock:
            self._flags[token] = threading.Event()
            while len(self._flags) > _MAX_FLAGS:
                self._flags.popitem(last=False)
        return token

    def cancel(self, token: Optional[str]) -> bool:
        """Ask the job started with ``token`` to stop; False when no such job is known."""
        with self._lock:
            flag = self._flags.get(token or "")
        if flag is None:
            return False
        flag.set()
        return True

    def cancelled(self, token: Optional[str]) -> bool:
        with self._lock:
            flag = self._flags.get(token or "")
        return flag is not None and flag.is_set()

    def finish(self, token: Optional[str]) -> None:
        with self._lock:
            self._flags.pop(token or "", None)

    # -- files the UI may serve ------------------------------------------------------------------

    def allowed_paths(self) -> list[str]:
        """Folders Gradio may serve besides its cache: the examples only. Outputs and past uploads are
        handed out as copies in the cache (`deliver`), so `/gradio_api/file=<home>/outputs/...` serves
        nothing and one visitor cannot fetch another's video by its path."""
        return [str(self.assets)]

    def file_roots(self) -> tuple[Path, ...]:
        """Where a file named by the browser may be: Gradio's upload cache, or one of our examples."""
        return (self.upload_dir, self.assets)

    def deliver(self, path: Optional[str | Path]) -> Optional[str]:
        """A copy of `path` in Gradio's cache for the browser to fetch (a hard link where the file system
        allows), in a folder named by a keyed hash: unguessable, and the same for the same file, so
        `withdraw` can find it again."""
        if path is None:
            return None
        source = Path(path)
        if not source.is_file():
            return None
        if self.upload_dir.resolve() in source.resolve().parents:
            return str(source)
        folder = config.private_dir(self.upload_dir / self._copy_key(source))
        target = folder / source.name
        if not target.exists():
            tmp = folder / f".{source.name}.tmp"
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:  # another file system: copy
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        return str(target)

    def withdraw(self, path: Optional[str | Path]) -> None:
        """Remove `deliver`'s copy of `path` (its job was deleted)."""
        if path:
            shutil.rmtree(self.upload_dir / self._copy_key(Path(path)), ignore_errors=True)

    def _copy_key(self, source: Path) -> str:
        return "lipsync-" + hashlib.blake2b(str(source.resolve()).encode(), key=self._secret, digest_size=16).hexdigest()


def gradio_cache_dir() -> Path:
    """Gradio's upload cache: GRADIO_TEMP_DIR when the user set it, else a private folder in LIPSYNC_HOME
    (Gradio's default, /tmp/gradio, is shared by every user of the machine)."""
    chosen = os.environ.get("GRADIO_TEMP_DIR", "").strip()
    return config.private_dir(Path(chosen) if chosen else config.home() / "gradio")


def uploads_dir() -> Path:
    """Inputs of past jobs, copied out of Gradio's temporary cache so History can re-open them after a restart."""
    path = config.home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path
