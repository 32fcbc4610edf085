"""Where Lipsync Studio keeps its state: job records, outputs, keys, settings.

Everything lives under one folder: ``LIPSYNC_HOME`` if set, else the platform's user data folder.
It holds secrets (the server's keys database, webhook secrets) and the user's media, so it and its
folders are the owner's alone (0700); files written there are 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

FPS = 25
# Speech analysis (and the sync report) work on 16 kHz mono.
AUDIO_RATE = 16000
SHORT_SIDE = {"480p": 480, "720p": 720}


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) a folder only its owner can enter; tighten it if it is looser
    (data folders made by older versions were 0755)."""
    path = Path(path)
    for folder in reversed([path, *path.parents]):
        if not folder.exists():  # parents made here are ours too (mkdir's own `parents` would make them 0755)
            folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.chmod(path, PRIVATE_DIR)
    return path


def home() -> Path:
    env = os.environ.get("LIPSYNC_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("lipsync-studio", appauthor=False))
    return private_dir(root)


def _subdir(name: str) -> Path:
    return private_dir(home() / name)


def jobs_dir() -> Path:
    return _subdir("jobs")


def outputs_dir() -> Path:
    return _subdir("outputs")


def cache_dir() -> Path:
    """Scratch space for downloads and intermediate files; safe to delete."""
    return _subdir("cache")
