"""How long one MuseTalk frame takes on this computer, so the CLI and the studio can say before a job
starts how long it will take. Every render measures it (the UNet and VAE passes, per frame) and keeps a
running figure per device in LIPSYNC_HOME; until the first render, our benchmark's figure stands in."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from ... import config
from ..base import FrameCost

# bench/musetalk_speed.py --size real (the real model sizes, random weights), fp32, batch 1-4, on the
# project's 2-core CPU (10.6-11.4 s a frame): see the README's engines table.
BENCH_CPU_SECONDS = 11.0
KEEP = 0.5  # weight of the figure so far against a new render's


def _path(home: Optional[Path] = None) -> Path:
    return (home or config.home()) / "engines" / "musetalk-speed.json"


def _read(home: Optional[Path] = None) -> dict:
    try:
        return json.loads(_path(home).read_text())
    except (OSError, ValueError):
        return {}


def measured(device: str, dtype: str, home: Optional[Path] = None) -> Optional[float]:
    value = _read(home).get(f"{device}/{dtype}")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def record(device: str, dtype: str, seconds_per_frame: float, home: Optional[Path] = None) -> None:
    """Blend a new measurement into the kept figure (written to a temp file, then renamed)."""
    data = _read(home)
    key = f"{device}/{dtype}"
    old = data.get(key)
    data[key] = seconds_per_frame if not isinstance(old, (int, float)) else KEEP * old + (1 - KEEP) * seconds_per_frame
    path = _path(home)
    config.private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def frame_cost(device: str, dtype: str, home: Optional[Path] = None) -> Optional[FrameCost]:
    """This computer's figure, else the benchmark's on a CPU; None on a GPU not measured yet (fast)."""
    seconds = measured(device, dtype, home)
    if seconds is not None:
        return FrameCost(seconds, device, measured=True)
    if device == "cpu":
        return FrameCost(BENCH_CPU_SECONDS, device, measured=False)
    return None


class TimedPipeline:
    """The tensor pipeline, with each `generate` call's time per frame recorded (the rest passes through)."""

    def __init__(self, pipe, device: str, dtype: str):
        self._pipe, self._key = pipe, (device, dtype)

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def generate(self, crops, *args, **kwargs):
        started = time.perf_counter()
        out = self._pipe.generate(crops, *args, **kwargs)
        if len(out):
            record(*self._key, (time.perf_counter() - started) / len(out))
        return out
