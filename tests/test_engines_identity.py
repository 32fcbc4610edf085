"""The built-in engine's output is bit-identical across the engine interface work (issue 9, part 1).

The MD5s below hash the decoded RGB frames of each job kind's output. They were first computed on main before
the interface changed (commit 7ea1c68), proving that refactor bit-identical; they were recomputed once, on
purpose, when the mouth interior was redrawn (issue 12 §3, merge of `interior`), so any later change to what the built-in engine draws, in which order
frames reach the encoder, or how the pipeline hands frames over shows up here. They depend on the pinned
media stack (espeak-ng voice, mediapipe, x264); if one of those is upgraded on purpose, recompute them on
code known to be unchanged (the assertion shows the new values) and say so in the commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest

from conftest import make_speech
from lipsync.pipeline import render
from lipsync.requests import ImageRequest, MultiRequest, VideoRequest

EXPECTED = {
    "video": ("2f865980673e3ad0e3a5dbc2ecd68af0", 36),
    "image": ("5b64457ca856dbfa92db9d862936e13b", 78),
    "dialogue": ("816708adfc73897a88c5883b2674df33", 62),
}


def frames_md5(path: Path) -> tuple[str, int]:
    """MD5 over the raw RGB bytes of every decoded frame, in order, and the frame count."""
    digest, n = hashlib.md5(), 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
            n += 1
    return digest.hexdigest(), n


def job(kind: str, media_dir: Path, astronaut_video: Path, astronaut_png: Path, two_people_png: Path):
    if kind == "video":
        speech = make_speech(media_dir / "ident_dub.wav", "Bob made a map.")
        return VideoRequest(video=str(astronaut_video), audio=str(speech))
    if kind == "image":
        speech = make_speech(media_dir / "ident_image.wav", "Maybe, mom. [[_:300]] Bob paid.")
        return ImageRequest(image=str(astronaut_png), audio=str(speech), seed=7, prompt="energetic smile")
    left = make_speech(media_dir / "ident_left.wav", "Map the moon.")
    right = make_speech(media_dir / "ident_right.wav", "Bob paid.", voice="en-us+f3")
    return MultiRequest(image=str(two_people_png), left_audio=str(left), right_audio=str(right),
                        order="left_right", seed=2)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_builtin_output_is_unchanged(kind, media_dir, astronaut_video, astronaut_png, two_people_png, tmp_path):
    out = tmp_path / f"{kind}.mp4"
    render(job(kind, media_dir, astronaut_video, astronaut_png, two_people_png), out)
    md5, n = frames_md5(out)
    assert (md5, n) == EXPECTED[kind]
