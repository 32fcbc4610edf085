"""Faces on real photos: detection, landmark regions, measurements, tracking."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lipsync.face import Face, FaceAnalyzer, FaceTracker, OneEuroFilter, regions as R


@pytest.fixture(scope="module")
def analyzer():
    with FaceAnalyzer() as a:
        yield a


@pytest.fixture(scope="module")
def hopper_small(grace_hopper) -> np.ndarray:
    """Grace Hopper (closed mouth) at 272x320: small frames keep the tests fast."""
    return cv2.resize(grace_hopper, (272, 320), interpolation=cv2.INTER_AREA)


class MouthOpener:
    """Opens a closed mouth in a photo by ``amount`` (in face_scale units): the lower jaw is pulled
    down (cv2.remap, fading out below the chin and to the sides) and the gap painted dark.

    Stands in for a talking face whose true opening we control.
    """

    def __init__(self, image: np.ndarray, face: Face):
        self.image = image
        lm = face.landmarks.astype(np.float64)
        self.scale = R.face_scale(lm)
        self.lip_y = float(lm[[R.LIP_TOP_INNER, R.LIP_BOTTOM_INNER], 1].mean())
        self.cx = float(lm[[R.MOUTH_LEFT, R.MOUTH_RIGHT], 0].mean())
        self.half = float(np.linalg.norm(lm[R.MOUTH_LEFT] - lm[R.MOUTH_RIGHT])) / 2
        chin = float(lm[R.CHIN, 1])
        h, w = image.shape[:2]
        self.ys, self.xs = np.mgrid[0:h, 0:w].astype(np.float32)
        below = np.clip(self.ys - self.lip_y, 0, 1)
        fade_y = np.clip(1 - (self.ys - self.lip_y) / (chin - self.lip_y + 0.6 * self.scale), 0, 1)
        fade_x = np.clip(1.5 - np.abs(self.xs - self.cx) / (1.6 * self.half), 0, 1)
        self.weight = (below * fade_y * fade_x).astype(np.float32)

    def __call__(self, amount: float) -> np.ndarray:
        d = float(amount) * self.scale
        out = cv2.remap(
            self.image, self.xs, self.ys - d * self.weight, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if d >= 1:
            centre = (int(round(self.cx)), int(round(self.lip_y + d / 2)))
            axes = (int(0.8 * self.half), max(1, int(d / 2)))
            cv2.ellipse(out, centre, axes, 0, 0, 360, (50, 15, 20), -1, cv2.LINE_AA)
        return out


# -- regions: indices ---------------------------------------------------------------------------------


def _edges(contour: list[int], closed: bool) -> set[frozenset]:
    pairs = list(zip(contour, contour[1:])) + ([(contour[-1], contour[0])] if closed else [])
    return {frozenset(p) for p in pairs}


def test_regions_follow_mediapipe_connections():
    from mediapipe.python.solutions import face_mesh_connections as C

    def undirected(edges):
        return {frozenset(e) for e in edges}

    assert _edges(R.LIPS_OUTER, True) | _edges(R.LIPS_INNER, True) == undirected(C.FACEMESH_LIPS)
    assert _edges(R.UPPER_LIP_OUTER, False) | _edges(R.LOWER_LIP_OUTER, False) == _edges(R.LIPS_OUTER, True)
    assert _edges(R.UPPER_LIP_INNER, False) | _edges(R.LOWER_LIP_INNER, False) == _edges(R.LIPS_INNER, True)
    assert _edges(R.LEFT_EYE_UPPER, False) | _edges(R.LEFT_EYE_LOWER, False) == undirected(C.FACEMESH_LEFT_EYE)
    assert _edges(R.RIGHT_EYE_UPPER, False) | _edges(R.RIGHT_EYE_LOWER, False) == undirected(C.FACEMESH_RIGHT_EYE)
    assert _edges(R.FACE_OVAL, True) == undirected(C.FACEMESH_FACE_OVAL)
    assert _edges(R.JAW, False) <= _edges(R.FACE_OVAL, True) and R.CHIN in R.JAW
    assert {R.MOUTH_LEFT, R.MOUTH_RIGHT} == {R.LIPS_OUTER[0], R.UPPER_LIP_OUTER[-1]}
    assert {R.LIP_TOP_INNER, R.LIP_BOTTOM_INNER} == {13, 14}
    assert R.LIP_TOP_INNER in R.UPPER_LIP_INNER and R.LIP_BOTTOM_INNER in R.LOWER_LIP_INNER


def test_regions_sit_where_they_should_on_the_astronaut(analyzer, astronaut):
    lm = analyzer.detect(astronaut)[0].landmarks
    y = lambda idx: lm[idx, 1].mean()  # noqa: E731
    # Top to bottom: eyes, nose tip, lips, chin.
    assert y(R.LEFT_EYE_UPPER) < y(R.LEFT_EYE_LOWER) < lm[R.NOSE_TIP, 1] < y(R.UPPER_LIP_OUTER) < y(R.LOWER_LIP_OUTER)
    assert y(R.RIGHT_EYE_UPPER) < y(R.RIGHT_EYE_LOWER)
    assert y(R.UPPER_LIP_INNER) <= y(R.LOWER_LIP_INNER)
    assert lm[R.CHIN, 1] == pytest.approx(lm[R.JAW, 1].max(), abs=2)
    # The subject's left is on the image's right; the jaw runs image-left to image-right.
    left_eye, right_eye = R.eye_centres(lm)
    assert left_eye[0] > right_eye[0]
    assert lm[R.MOUTH_LEFT, 0] > lm[R.MOUTH_RIGHT, 0]
    assert lm[R.JAW[0], 0] < lm[R.CHIN, 0] < lm[R.JAW[-1], 0]
    # Inner lips lie inside the outer lip contour.
    outer = lm[R.LIPS_OUTER].astype(np.float32)
    inside = [cv2.pointPolygonTest(outer, tuple(map(float, lm[i])), True) >= -1 for i in R.LIPS_INNER]
    assert all(inside)


# -- detection -----------------------------------------------------------------------------------


def _assert_face_in(face: Face, x0: float, y0: float, x1: float, y1: float):
    cx, cy = face.centre
    assert x0 < cx < x1 and y0 < cy < y1, (face.box, (x0, y0, x1, y1))


def test_detects_astronaut(analyzer, astronaut):
    faces = analyzer.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (478, 2) and face.landmarks.dtype == np.float32
    assert face.box.shape == (4,) and face.box.dtype == np.float32
    assert 0.5 <= face.score <= 1.0
    _assert_face_in(face, 180, 80, 280, 190)  # the face in skimage's astronaut photo
    assert 70 < face.size < 140


def test_detects_grace_hopper(analyzer, grace_hopper):
    faces = analyzer.detect(grace_hopper)
    assert len(faces) == 1
    _assert_face_in(faces[0], 170, 150, 360, 350)


def test_two_faces_sorted_left_to_right(analyzer, astronaut, grace_hopper):
    right = cv2.resize(grace_hopper, (int(grace_hopper.shape[1] * 512 / grace_hopper.shape[0]), 512))
    both = np.ascontiguousarray(np.concatenate([astronaut, right], axis=1))
    faces = analyzer.detect(both)
    assert len(faces) == 2
    assert faces[0].centre[0] < 512 < faces[1].centre[0]
    _assert_face_in(faces[0], 180, 80, 280, 190)


def test_small_face_in_full_hd_frame(analyzer, astronaut):
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.integers(60, 190, (1080, 1920, 3)).astype(np.uint8), (0, 0), 2)
    small = cv2.resize(astronaut, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)  # face ~16 px wide
    y, x = 700, 1300
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    faces = analyzer.detect(canvas)
    assert len(faces) == 1
    sh, sw = small.shape[:2]
    _assert_face_in(faces[0], x + 0.3 * sw, y + 0.1 * sh, x + 0.6 * sw, y + 0.4 * sh)
    # Asking only for bigger faces skips the fine tiles and so misses it.
    assert analyzer.detect(canvas, min_face=64) == []


def test_no_face_in_noise_or_blank(analyzer):
    rng = np.random.default_rng(1)
    assert analyzer.detect(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) == []
    assert analyzer.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert analyzer.landmarks_in(np.full((240, 320, 3), 128, np.uint8), np.array([100, 60, 200, 180])) is None


def test_rejects_non_rgb(analyzer):
    with pytest.raises(ValueError):
        analyzer.detect(np.zeros((64, 64), np.uint8))


def test_landmarks_in_matches_detect(analyzer, astronaut):
    face = analyzer.detect(astronaut)[0]
    # A box off by a few pixels (as from the previous video frame) still gives the same landmarks.
    again = analyzer.landmarks_in(astronaut, face.box + np.array([6, -4, 6, -4], np.float32))
    assert again is not None
    assert np.median(np.linalg.norm(again.landmarks - face.landmarks, axis=1)) < 1.5
    # The face at the edge of the frame: the crop is padded, landmarks stay in frame coordinates.
    shifted = np.ascontiguousarray(astronaut[:, 150:])
    edge = analyzer.landmarks_in(shifted, face.box - np.array([150, 0, 150, 0], np.float32))
    assert edge is not None
    assert np.median(np.linalg.norm(edge.landmarks + [150, 0] - face.landmarks, axis=1)) < 2.5


# -- measurements --------------------------------------------------------------------------------


def test_measurements(analyzer, astronaut, hopper_small):
    astro = analyzer.detect(astronaut)[0]
    hopper = analyzer.detect(hopper_small)[0]
    left, right = R.eye_centres(astro.landmarks)
    assert R.face_scale(astro) == pytest.approx(np.linalg.norm(left - right), rel=0.25)
    # Grace Hopper's lips are closed; the astronaut smiles with her teeth apart.
    assert R.mouth_opening(hopper) < 0.03
    assert R.mouth_opening(astro) > 0.08
    assert 0.5 < R.mouth_width(hopper) < 1.3
    for eye in (*R.eye_openness(astro), *R.eye_openness(hopper)):
        assert 0.15 < eye < 0.6


def test_mouth_opening_follows_a_mouth_opening(analyzer, hopper_small):
    opener = MouthOpener(hopper_small, analyzer.detect(hopper_small)[0])
    measured = []
    for amount in (0.0, 0.1, 0.2, 0.3):
        faces = analyzer.detect(opener(amount))
        assert len(faces) == 1
        measured.append(R.mouth_opening(faces[0]))
        # Scale-free: the face's size does not change when the mouth opens.
        assert R.face_scale(faces[0]) == pytest.approx(opener.scale, rel=0.08)
    assert measured[0] < 0.03
    assert all(b > a + 0.04 for a, b in zip(measured, measured[1:])), measured
    assert measured[-1] == pytest.approx(0.3, abs=0.1)


# -- tracking ------------------------------------------------------------------------------------


def test_one_euro_filter_steady_when_still_and_quick_when_moving():
    rng = np.random.default_rng(0)
    still = 5.0 + rng.normal(0, 0.1, 200)
    ramp = np.arange(100) * 0.2  # 5 units/s

    def run(f: OneEuroFilter, signal: np.ndarray) -> np.ndarray:
        f.reset()
        return np.array([f(np.array([v]))[0] for v in signal])

    one_euro = OneEuroFilter(min_cutoff=1.0, beta=1.0, fps=25)
    low_pass = OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=25)  # no speed term: a plain low-pass
    assert run(one_euro, still)[20:].std() < 0.6 * still[20:].std()
    assert np.abs(run(one_euro, ramp) - ramp)[20:].max() < 0.15  # lags by under a frame's motion
    assert np.abs(run(low_pass, ramp) - ramp)[20:].max() > 0.6


def _noisy(image: np.ndarray, n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_tracker_smoothing_reduces_jitter(analyzer, astronaut):
    frames = _noisy(cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA), 30)

    def nose(smoothing: float) -> np.ndarray:
        tracker = FaceTracker(analyzer, smoothing=smoothing)
        faces = [tracker.update(f) for f in frames]
        assert all(face is not None for face in faces)
        return np.array([face.landmarks[R.NOSE_TIP] for face in faces])

    raw, smooth = nose(0.0), nose(1.0)
    assert raw.std(axis=0).sum() > 0.05  # the noise does make the raw landmarks jitter
    assert smooth.std(axis=0).sum() < 0.85 * raw.std(axis=0).sum()
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.6 * np.abs(np.diff(raw, axis=0)).mean()


def test_tracker_keeps_mouth_motion(analyzer, hopper_small):
    opener = MouthOpener(hopper_small, analyzer.detect(hopper_small)[0])
    amounts = 0.3 * np.abs(np.sin(np.arange(30) * 0.6))  # wide open 4.8 times a second: fast speech
    frames = [opener(a) for a in amounts]

    def openings(smoothing: float) -> np.ndarray:
        tracker = FaceTracker(analyzer, smoothing=smoothing)
        return np.array([R.mouth_opening(tracker.update(f)) for f in frames])

    raw, smooth = openings(0.0), openings(1.0)
    assert np.corrcoef(raw, amounts)[0, 1] > 0.95
    assert np.corrcoef(smooth, raw)[0, 1] > 0.97
    assert np.abs(smooth - raw).max() < 0.07


def test_tracker_loses_and_recovers_face(analyzer, astronaut):
    image = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frames = _noisy(image, 24)
    for i in range(8, 16):
        frames[i] = np.full_like(image, 90)  # the face is gone for 8 frames
    tracker = FaceTracker(analyzer, redetect_every=5)
    faces = [tracker.update(f) for f in frames]
    assert all(f is not None for f in faces[:8])
    assert all(f is None for f in faces[8:16])
    assert all(f is not None for f in faces[16:])
    nose = np.array([faces[i].landmarks[R.NOSE_TIP] for i in (0, 7, 16, 23)])
    assert np.abs(nose - nose[0]).max() < 3  # the same place before and after the gap


def test_tracker_follows_moving_face_and_the_picked_one(analyzer, astronaut, grace_hopper):
    right = cv2.resize(grace_hopper, (int(grace_hopper.shape[1] * 256 / grace_hopper.shape[0]), 256))
    both = np.concatenate([cv2.resize(astronaut, (256, 256)), right], axis=1)
    pad = np.ascontiguousarray(cv2.copyMakeBorder(both, 0, 0, 40, 40, cv2.BORDER_REFLECT))
    width = both.shape[1]
    # The view pans so the faces move right by 1.5 px a frame.
    frames = [np.ascontiguousarray(pad[:, 40 - 3 * i // 2 : 40 - 3 * i // 2 + width]) for i in range(20)]
    first = analyzer.detect(frames[0])
    assert len(first) == 2
    for index in (0, 1):
        tracker = FaceTracker(analyzer, pick=lambda faces, i=index: faces[i] if i < len(faces) else None)
        faces = [tracker.update(f) for f in frames]
        assert all(f is not None for f in faces)
        xs = np.array([f.landmarks[R.NOSE_TIP, 0] for f in faces])
        expected = first[index].landmarks[R.NOSE_TIP, 0] + 1.5 * np.arange(20)
        assert np.abs(xs - expected).max() < 4, (index, xs - expected)
    # Default pick: the largest face (Grace Hopper, on the right).
    tracker = FaceTracker(analyzer)
    assert tracker.update(frames[0]).centre[0] > 256
