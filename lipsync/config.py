"""Where Lipsync Studio keeps its state: job records, outputs, keys, settings.

Everything lives under one folder: ``LIPSYNC_HOME`` if set, else the platform's user data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

FPS = 25
# Speech analysis (and the sync report) work on 16 kHz mono.
AUDIO_RATE = 16000
SHORT_SIDE = {"480p": 480, "720p": 720}


def home() -> Path:
    env = os.environ.get("LIPSYNC_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("lipsync-studio", appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def jobs_dir() -> Path:
    return _subdir("jobs")


def outputs_dir() -> Path:
    return _subdir("outputs")


def cache_dir() -> Path:
    """Scratch space for downloads and intermediate files; safe to delete."""
    return _subdir("cache")
