"""What one running studio knows beyond a single request: its limits, its public URL and the cancel flags
of running jobs. Cheap to import: no Gradio, no media libraries."""

from __future__ import annotations

import os
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
    _flags: "OrderedDict[str, threading.Event]" = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        """Folders Gradio may serve: outputs, persisted uploads and the examples. Not the whole
        LIPSYNC_HOME: the server keeps its key store there."""
        return [str(config.outputs_dir()), str(uploads_dir()), str(self.assets)]


def uploads_dir() -> Path:
    """Inputs of past jobs, copied out of Gradio's temporary cache so History can re-open them after a restart."""
    path = config.home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path
