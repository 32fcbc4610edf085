"""Shared fixtures: real media made on the fly (espeak-ng speech, public-domain photos)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def lipsync_home(tmp_path_factory, monkeypatch):
    """Every test gets its own LIPSYNC_HOME so nothing touches the user's data folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LIPSYNC_HOME", str(home))
    return home


def traced_peak(run) -> int:
    """Peak bytes Python allocated while `run()` ran (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def make_speech(path: Path, text: str, *, voice: str = "en-us", speed: int = 150, pitch: int | None = None) -> Path:
    """Speak ``text`` with espeak-ng into a WAV file (22.05 kHz mono)."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path)]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    subprocess.run([*cmd, text], check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    """About 3 s of English speech with pauses and bilabials."""
    return make_speech(media_dir / "speech.wav", "Bob bought a map. [[_:500]] Mom made pasta, maybe.")


@pytest.fixture(scope="session")
def speech_wav_2(media_dir) -> Path:
    return make_speech(media_dir / "speech2.wav", "Hello there, how are you today?", voice="en-us+f3")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # RGB uint8, 512x512, public domain (NASA)


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(matplotlib.image.imread(f, format="jpg"))  # RGB uint8, public domain (US Navy)


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def astronaut_png(media_dir, astronaut) -> Path:
    return save_rgb(media_dir / "astronaut.png", astronaut)


@pytest.fixture(scope="session")
def hopper_jpg(media_dir, grace_hopper) -> Path:
    return save_rgb(media_dir / "hopper.jpg", grace_hopper)


@pytest.fixture(scope="session")
def two_people_png(media_dir, astronaut, grace_hopper) -> Path:
    """Astronaut on the left, Grace Hopper on the right, in one image."""
    import cv2

    h = 512
    right = cv2.resize(grace_hopper, (int(grace_hopper.shape[1] * h / grace_hopper.shape[0]), h))
    return save_rgb(media_dir / "two.png", np.concatenate([astronaut, right], axis=1))


@pytest.fixture(scope="session")
def astronaut_video(media_dir, astronaut_png) -> Path:
    """A 2 s 25 fps H.264 video of the astronaut slowly panning, with a silent audio track."""
    out = media_dir / "astronaut.mp4"
    run_ffmpeg(
        "-loop", "1", "-i", str(astronaut_png), "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo",
        "-vf", "scale=640:640,crop=600:600:x='20+10*sin(t)':y=20,format=yuv420p",
        "-t", "2", "-r", "25", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(out),
    )
    return out
