"""Sync report on synthetic talking videos: Grace Hopper's mouth opened frame by frame by a known amount
(see test_face.MouthOpener), driven by real espeak-ng speech."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipsync.errors import InputError
from lipsync.face import FaceAnalyzer
from lipsync.media.audio import load_audio
from lipsync.quality import SyncReport, sync_report
from lipsync.quality.sync_report import (ALIGNMENT_FAILED, NO_TRANSCRIPT, best_lagged_correlation, closed_threshold,
                                        silence_frames)
from lipsync.speech import speech_envelope
from lipsync.quality.reference import align_transcript
from test_face import MouthOpener

FPS = 25
BOB = "Bob bought a map. Mom made pasta, maybe."  # what conftest's speech_wav says


def write_video(path: Path, frames) -> Path:
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=FPS)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "16"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def talk(grace_hopper, speech_wav):
    """(opener, per-frame amounts of a well-synced mouth) for speech_wav."""
    base = cv2.resize(grace_hopper, (272, 320), interpolation=cv2.INTER_AREA)
    with FaceAnalyzer() as analyzer:
        opener = MouthOpener(base, analyzer.detect(base)[0])
    audio = load_audio(speech_wav, "audio", 16000)
    n = math.ceil(audio.size / 16000 * FPS)
    amounts = 0.3 * speech_envelope(audio, 16000, n, fps=FPS)
    # Lips shut on /p b m/, as a good lip sync does.
    for phone in align_transcript(audio, BOB) or []:
        if phone.kind == "bilabial":
            amounts[int(phone.start * FPS) : math.ceil(phone.end * FPS)] = 0.0
    return opener, amounts


@pytest.fixture(scope="module")
def good_video(talk, tmp_path_factory) -> Path:
    opener, amounts = talk
    return write_video(tmp_path_factory.mktemp("sync") / "good.mp4", (opener(a) for a in amounts))


def test_good_sync_passes(good_video, speech_wav, tmp_path):
    plot = tmp_path / "report.png"
    report = sync_report(good_video, speech_wav, transcript=BOB, reference=good_video, plot=plot)
    assert isinstance(report, SyncReport)
    assert report.r > 0.65 and report.best_lag == 0  # closing on /m/ (voiced, loud) costs some r
    assert report.face_found == 1.0
    assert report.silence_closed is not None and report.silence_closed >= 0.9
    assert report.n_bilabials >= 8  # B B B M P M M M P M B; alignment may merge a few
    assert report.bilabial_closed is not None and report.bilabial_closed >= 0.8
    assert report.upper_face_psnr is not None and report.upper_face_psnr > 60
    assert report.opening.shape == report.envelope.shape == (good_video_frames(good_video),)
    assert report.passed()
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["passed"] is True and data["best_lag"] == 0
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 600


def good_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_reversed_mouth_fails(talk, good_video, speech_wav, tmp_path):
    opener, amounts = talk
    video = write_video(tmp_path / "reversed.mp4", (opener(a) for a in amounts[::-1]))
    report = sync_report(video, speech_wav, transcript=BOB, reference=good_video)
    assert report.r < 0.5
    assert report.silence_closed is not None and report.silence_closed < 0.5
    assert not report.passed()
    # The mouth differs from the reference, but it is below the nose: the upper face still matches.
    assert report.upper_face_psnr > 45


def test_late_mouth_gives_positive_lag(talk, speech_wav, tmp_path):
    opener, amounts = talk
    late = np.concatenate([np.zeros(3), amounts[:-3]])  # the mouth moves 3 frames after the sound
    video = write_video(tmp_path / "late.mp4", (opener(a) for a in late))
    report = sync_report(video, speech_wav)  # no transcript: no bilabial score at all
    assert report.bilabial_closed is None and report.n_bilabials == 0
    assert report.note == "bilabial score unavailable without a transcript"
    assert report.to_dict()["note"] == report.note and report.rounding is None
    assert report.best_lag == 3
    assert report.r > 0.65
    assert not report.passed()  # |lag| > 1


def test_the_reference_never_uses_the_engines_phone_decoder(good_video, speech_wav, monkeypatch):
    import lipsync.speech.phones as engine_phones

    def forbidden(*args, **kwargs):
        raise AssertionError("the sync report used the engine's own phone decoder")

    for name in ("decode_phones", "align_phones", "phone_decoder", "align_decoder"):
        monkeypatch.setattr(engine_phones, name, forbidden)
    aligned = sync_report(good_video, speech_wav, transcript=BOB)
    assert aligned.phone_reference == "transcript" and aligned.n_bilabials >= 8 and aligned.note is None
    without = sync_report(good_video, speech_wav)
    assert without.bilabial_closed is None and without.note == NO_TRANSCRIPT and without.phone_reference is None
    gibberish = sync_report(good_video, speech_wav, transcript="Zorblax quuxifies frobnitz glorpwise.")
    assert gibberish.bilabial_closed is None and gibberish.note == ALIGNMENT_FAILED


def test_upper_face_psnr_drops_when_the_upper_face_changes(talk, good_video, speech_wav, tmp_path):
    opener, amounts = talk
    eyes_y = int(opener.lip_y - 1.2 * opener.scale)

    def blur_eyes(frame: np.ndarray) -> np.ndarray:
        frame = frame.copy()
        frame[eyes_y - 25 : eyes_y + 15] = cv2.GaussianBlur(frame[eyes_y - 25 : eyes_y + 15], (0, 0), 3)
        return frame

    changed = write_video(tmp_path / "eyes.mp4", (blur_eyes(opener(a)) for a in amounts))
    report = sync_report(changed, speech_wav, reference=good_video)
    assert report.upper_face_psnr < 35
    assert report.r > 0.65  # the mouth is as good as ever


def test_face_index_picks_the_speaker(talk, speech_wav, astronaut, tmp_path):
    opener, amounts = talk
    listener = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)  # static face on the right
    video = write_video(tmp_path / "two.mp4", (np.concatenate([opener(a), listener], axis=1) for a in amounts))
    speaker = sync_report(video, speech_wav, face_index=0)
    other = sync_report(video, speech_wav, face_index=1)
    assert speaker.r > 0.65
    assert other.r < 0.5
    with pytest.raises(InputError) as err:
        sync_report(video, speech_wav, face_index=2)
    assert err.value.field == "face_index"


def test_errors_name_the_input(speech_wav, tmp_path):
    with pytest.raises(InputError) as err:
        sync_report(tmp_path / "missing.mp4", speech_wav)
    assert err.value.field == "video"
    blank = write_video(tmp_path / "blank.mp4", (np.full((128, 160, 3), 100, np.uint8) for _ in range(10)))
    with pytest.raises(InputError, match="no face"):
        sync_report(blank, speech_wav)
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("hello")
    with pytest.raises(InputError) as err:
        sync_report(blank, not_audio)
    assert err.value.field in ("video", "audio")


# -- pieces --------------------------------------------------------------------------------------


def test_lag_sign_and_nan_frames():
    rng = np.random.default_rng(0)
    envelope = np.convolve(rng.random(120), np.ones(4) / 4, mode="same")
    opening = np.concatenate([np.zeros(2), envelope[:-2]])  # mouth 2 frames late
    opening[10:20] = np.nan  # no face there
    r, lag = best_lagged_correlation(opening, envelope, 5)
    assert lag == 2 and r > 0.99
    r, lag = best_lagged_correlation(envelope[2:], envelope[:-2], 5)  # mouth 2 frames early
    assert lag == -2
    assert best_lagged_correlation(np.ones(50), envelope[:50], 5)[0] == 0.0  # a frozen mouth


def test_silence_frames_and_closed_threshold():
    active = np.array([0] * 3 + [1] * 10 + [0] * 12 + [1] * 10 + [0] * 5 + [1] * 5 + [0] * 9, bool)
    pauses = silence_frames(active, 25.0)
    # Start (3 frames < 0.3 s): no. Middle 12 frames: yes, minus 2 at each end. 5 frames: no.
    # End, 9 frames: yes, minus 2 at its start only.
    expected = np.zeros(active.size, bool)
    expected[15:23] = True
    expected[47:] = True
    assert np.array_equal(pauses, expected)
    assert closed_threshold(np.array([0.0, 0.01, 0.02])) == pytest.approx(0.04)
    wide = np.linspace(0, 0.6, 100)
    assert closed_threshold(wide) == pytest.approx(0.15 * np.percentile(wide, 95))


# -- rounding ------------------------------------------------------------------------------------


class MouthSqueezer:
    """Narrows (factor < 1) or widens (> 1) the mouth of a photo horizontally about its centre with a
    smooth remap: a face whose true mouth width we control."""

    def __init__(self, image: np.ndarray, face):
        from lipsync.face import regions as R

        lm = face.landmarks.astype(np.float64)
        self.image = image
        self.cx, cy = lm[[R.MOUTH_LEFT, R.MOUTH_RIGHT]].mean(axis=0)
        half = float(np.linalg.norm(lm[R.MOUTH_LEFT] - lm[R.MOUTH_RIGHT])) / 2
        h, w = image.shape[:2]
        self.ys, self.xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.weight = np.exp(-(((self.xs - self.cx) / (1.6 * half)) ** 2) - ((self.ys - cy) / (0.6 * half)) ** 2)

    def __call__(self, factor: float) -> np.ndarray:
        k = 1 + (factor - 1) * self.weight
        xs = (self.cx + (self.xs - self.cx) / k).astype(np.float32)
        return cv2.remap(self.image, xs, self.ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


ROUND_TEXT = "Who would go to the pool? We see three sheep. Bob knew you."


@pytest.fixture(scope="module")
def rounding_talk(grace_hopper, tmp_path_factory):
    """(squeezer, ground-truth phones, wav) for espeak speech of ROUND_TEXT."""
    from lipsync.media.audio import write_wav
    from lipsync.quality.groundtruth import synthesize

    base = cv2.resize(grace_hopper, (272, 320), interpolation=cv2.INTER_AREA)
    with FaceAnalyzer() as analyzer:
        squeezer = MouthSqueezer(base, analyzer.detect(base)[0])
    audio, phones = synthesize(ROUND_TEXT, "en-us", 150)
    wav = tmp_path_factory.mktemp("round") / "round.wav"
    write_wav(wav, audio, 16000)
    return squeezer, phones, wav


def _factors(phones, n: int, rounded: float, spread: float) -> np.ndarray:
    from lipsync.quality.groundtruth import phone_class

    factors = np.ones(n)
    for p in phones:
        kind = phone_class(p.phoneme)
        value = rounded if kind == "rounded" else spread if kind == "spread" else None
        if value is not None:
            factors[int(p.start * FPS) : math.ceil(p.end * FPS)] = value
    return factors


def test_rounding_score_follows_a_controlled_mouth_width(rounding_talk, tmp_path):
    from lipsync.quality.reference import from_ground_truth

    squeezer, phones, wav = rounding_talk
    n = math.ceil(load_audio(wav, "audio", 16000).size / 16000 * FPS)
    rounded = write_video(tmp_path / "rounded.mp4", (squeezer(f) for f in _factors(phones, n, 0.7, 1.15)))
    plain = write_video(tmp_path / "plain.mp4", (squeezer(1.0) for _ in range(n)))

    truth = sync_report(rounded, wav, phones=from_ground_truth(phones), plot=tmp_path / "r.png")
    assert truth.phone_reference == "ground truth" and truth.n_rounded >= 6 and truth.n_spread >= 4
    assert truth.rounding < 0.88  # 0.7 / 1.15 = 0.61 drawn; FaceMesh sees less of it (~0.82)
    assert truth.width is not None and truth.width.shape == truth.opening.shape
    aligned = sync_report(rounded, wav, transcript=ROUND_TEXT)  # the transcript's own forced alignment
    assert aligned.phone_reference == "transcript" and aligned.rounding < 0.9
    assert aligned.n_bilabials >= 2 and aligned.to_dict()["rounding"] == round(aligned.rounding, 3)
    still = sync_report(plain, wav, transcript=ROUND_TEXT)
    assert 0.97 < still.rounding < 1.03  # a mouth that never changes width does not round
    assert cv2.imread(str(tmp_path / "r.png")).shape[0] > 400  # the width panel below the opening one
