"""The example media in assets/: present, what the README says, small, and reproducible."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
FILES = [
    "portrait.png",
    "hopper.jpg",
    "two_people.png",
    "speech_en.wav",
    "speech_en.txt",
    "speech_left.wav",
    "speech_right.wav",
    "talking.mp4",
]
SPEECH = ["speech_en.wav", "speech_left.wav", "speech_right.wav"]


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path))
    assert bgr is not None, f"{path.name} does not decode"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def face_detector():
    import mediapipe as mp

    # Full-range model (model_selection=1): the faces here are small in a wide frame.
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector:
        yield detector


def face_centres(detector, rgb: np.ndarray) -> list[float]:
    """Relative x of each detected face's centre, left to right."""
    result = detector.process(np.ascontiguousarray(rgb))
    boxes = [d.location_data.relative_bounding_box for d in result.detections or []]
    return sorted(b.xmin + b.width / 2 for b in boxes)


def speech_spans(path: Path) -> tuple[float, float, float]:
    """(first sound, last sound, longest silence between them) in seconds, from 20 ms RMS frames."""
    audio, rate = sf.read(path, dtype="float32")
    hop = rate // 50
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(rms > 0.03 * rms.max())
    return loud[0] / 50, (loud[-1] + 1) / 50, (np.diff(loud).max() - 1) / 50


def test_every_asset_exists_and_nothing_else():
    present = sorted(p.name for p in ASSETS.iterdir() if p.name != "README.md")
    assert present == sorted(FILES)


def test_assets_are_small():
    total = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert total < 8 * 1024 * 1024


def test_readme_mentions_every_file_and_its_licence():
    readme = (ASSETS / "README.md").read_text()
    for name in FILES:
        assert f"`{name}`" in readme, name
    assert "public domain" in readme.lower()
    assert "not a derived work" in readme  # espeak-ng's GPL does not reach its output


def test_portrait_has_one_face(face_detector):
    rgb = read_rgb(ASSETS / "portrait.png")
    assert rgb.shape == (512, 512, 3)
    assert len(face_centres(face_detector, rgb)) == 1


def test_hopper_has_one_face(face_detector):
    rgb = read_rgb(ASSETS / "hopper.jpg")
    assert rgb.shape == (600, 512, 3)
    assert len(face_centres(face_detector, rgb)) == 1


def test_two_people_has_a_face_in_each_half(face_detector):
    rgb = read_rgb(ASSETS / "two_people.png")
    assert rgb.shape[0] == 512
    # The left half is the portrait, untouched.
    assert np.array_equal(rgb[:, :512], read_rgb(ASSETS / "portrait.png"))
    centres = face_centres(face_detector, rgb)
    assert len(centres) == 2
    split = 512 / rgb.shape[1]
    assert centres[0] < split < centres[1]


@pytest.mark.parametrize("name", SPEECH)
def test_speech_clips_are_short_mono_16bit_with_a_pause(name):
    info = sf.info(ASSETS / name)
    assert (info.channels, info.subtype, info.samplerate) == (1, "PCM_16", 22050)
    assert 3.0 <= info.duration <= 6.0
    start, end, longest_gap = speech_spans(ASSETS / name)
    assert start < 0.5 and end > info.duration - 0.6  # speech fills the clip
    assert longest_gap >= 0.35  # the pause written into the sentence


def median_pitch(path: Path) -> float:
    """Median f0 (Hz) of the loud 40 ms frames, from the autocorrelation peak in 60-400 Hz."""
    audio, rate = sf.read(path, dtype="float64")
    size = rate // 25
    frames = audio[: len(audio) // size * size].reshape(-1, size)
    frames = frames[np.sqrt((frames**2).mean(axis=1)) > 0.1 * np.abs(audio).max()]
    lo, hi = rate // 400, rate // 60
    pitches = []
    for frame in frames - frames.mean(axis=1, keepdims=True):
        corr = np.correlate(frame, frame, mode="full")[size - 1 :]
        pitches.append(rate / (lo + int(np.argmax(corr[lo:hi]))))
    return float(np.median(pitches))


def test_left_and_right_voices_differ():
    # en-us (male) on the left, en-us+f3 (female) on the right: about an octave apart.
    left, right = median_pitch(ASSETS / "speech_left.wav"), median_pitch(ASSETS / "speech_right.wav")
    assert 70 < left < 160 and 160 < right < 300
    assert right > 1.5 * left


def test_transcript_is_plain_text_with_bilabials():
    text = (ASSETS / "speech_en.txt").read_text(encoding="utf-8").strip()
    assert text and "<" not in text and "[[" not in text  # no SSML / espeak markup leaked in
    words = text.lower().split()
    assert 8 <= len(words) <= 25
    assert sum(w[0] in "bpm" for w in words) >= 4


def test_talking_video(face_detector):
    import av

    with av.open(str(ASSETS / "talking.mp4")) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.average_rate == 25
        assert audio.codec_context.name == "aac"
        duration = container.duration / 1_000_000
        assert 2.0 <= duration <= 4.0
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert abs(len(frames) - duration * 25) <= 2
    first, last = frames[0], frames[-1]
    assert len(face_centres(face_detector, first)) == 1
    assert len(face_centres(face_detector, last)) == 1
    # The camera moves: the last frame is not the first one.
    assert np.abs(first.astype(np.int16) - last.astype(np.int16)).mean() > 5


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_make_assets_regenerates_them(tmp_path):
    subprocess.run([sys.executable, str(REPO / "tools" / "make_assets.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    # The photos depend only on the bundled sample data: byte for byte the same.
    for name in ("portrait.png", "hopper.jpg", "two_people.png", "speech_en.txt"):
        assert sha256(tmp_path / name) == sha256(ASSETS / name), name
    # Speech and video depend on the espeak-ng / ffmpeg versions installed, so compare shape, not bytes.
    for name in SPEECH:
        assert sf.info(tmp_path / name).duration == pytest.approx(sf.info(ASSETS / name).duration, abs=0.3)
    assert (tmp_path / "talking.mp4").stat().st_size > 10_000
