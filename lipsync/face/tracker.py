"""Follow one face through a video: cheap FaceMesh-on-the-previous-box each frame, full detection only
when the face is acquired, lost or due for a check, and One Euro smoothing against landmark jitter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import regions
from .landmarks import Face, FaceAnalyzer, box_iou, landmarks_box

Pick = Callable[[list[Face]], Optional[Face]]

# Landmarks on and around the lips: filtered with a higher minimum cutoff so quick small mouth motion
# (speech) survives the smoothing that steadies the rest of the face.
_MOUTH = sorted(set(regions.LIPS_OUTER + regions.LIPS_INNER))


@dataclass
class OneEuroFilter:
    """One Euro filter (Casiez et al. 2012) over an array of coordinates: a low-pass whose cutoff rises
    with the signal's speed, so it is steady when still and barely lags when moving.

    ``min_cutoff`` (Hz) and ``beta`` (extra cutoff per unit of speed) may be arrays broadcastable to
    the signal, to filter parts of it differently.
    """

    min_cutoff: float | np.ndarray = 1.0
    beta: float | np.ndarray = 0.0
    d_cutoff: float = 1.0
    fps: float = 25.0
    _x: np.ndarray | None = field(default=None, init=False, repr=False)
    _dx: np.ndarray | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        self._x = self._dx = None

    def _alpha(self, cutoff: float | np.ndarray) -> float | np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
        return 1.0 / (1.0 + tau * self.fps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) * self.fps
        self._dx = self._dx + self._alpha(self.d_cutoff) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(cutoff) * (x - self._x)
        return self._x.copy()


def largest_face(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.size, default=None)


def _drifted(previous: Face, current: Face) -> bool:
    """The mesh jumped (to another face, or a wrong fit) rather than following the head."""
    ratio = current.size / max(previous.size, 1e-6)
    return box_iou(previous.box, current.box) < 0.4 or not 0.7 < ratio < 1.4


class FaceTracker:
    """Follows ONE face through the frames given to ``update()`` in order.

    The face is chosen with ``pick`` among all detected faces (sorted left to right; default: the
    largest) when tracking starts or after the face was lost. Afterwards each frame costs one FaceMesh
    run on the crop around the previous box; detection runs again every ``redetect_every`` frames
    (to confirm the face against the detector) and whenever the mesh fails or jumps. While no face is
    tracked, every frame gets a cheap detection (faces about the lost one's size) and every
    ``redetect_every``-th frame a full one (faces down to the analyzer's ``min_face``).

    ``smoothing`` scales the One Euro filtering of the landmarks: 0 disables it (raw per-frame landmarks,
    e.g. for measuring), 1 is the default, 2 is steadier but lags more. The mouth is filtered
    more lightly than the rest of the face so speech motion is kept. The filter restarts whenever the
    face is (re-)acquired.
    """

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        pick: Pick | None = None,
        redetect_every: int = 25,
        smoothing: float = 1.0,
        fps: float = 25.0,
    ):
        self.analyzer = analyzer
        self.pick = pick or largest_face
        self.redetect_every = max(1, redetect_every)
        self.smoothing = smoothing
        # Cutoffs in Hz, speeds in face units (face_scale) per second. The mouth gets a higher floor
        # and reacts much faster to motion: with a mouth opening and closing 5 times a second its
        # opening stays within ~0.05 of the raw one (r ~0.99), while static lip jitter drops by ~25%.
        min_cutoff = np.full((478, 1), 1.0)
        min_cutoff[_MOUTH] = 8.0
        beta = np.full((478, 1), 8.0)
        beta[_MOUTH] = 100.0
        self._filter = None
        if smoothing > 0:
            self._filter = OneEuroFilter(min_cutoff=min_cutoff / smoothing, beta=beta, d_cutoff=1.0, fps=fps)
        self._last: Face | None = None  # unsmoothed, drives the next crop
        self._last_size: float | None = None  # size of the face when it was lost, to look for it cheaply
        self._since_detect = 0
        self._searching = 0  # frames spent looking for the face since it was lost
        self._scale = 1.0  # face_scale at acquisition: the filter works in face units, not pixels

    @property
    def raw(self) -> Face | None:
        """The last frame's face before smoothing (None when no face)."""
        return self._last

    def reset(self) -> None:
        self._last = None
        self._last_size = None
        self._since_detect = 0
        self._searching = 0
        if self._filter is not None:
            self._filter.reset()

    def update(self, frame: np.ndarray) -> Face | None:
        """The tracked face in this RGB frame, or None when it is not there (pass the frame through)."""
        acquired = self._last is None
        face = self._acquire(frame) if acquired else self._follow(frame)
        if face is None:
            if self._last is not None:
                self._last_size = self._last.size
            self._last = None
            return None
        self._last = face
        return self._smooth(face, restart=acquired)

    def _acquire(self, frame: np.ndarray) -> Face | None:
        # Until a face is (re)found: look for faces of every size every `redetect_every` frames, and in
        # between only for the cheap ones (about the lost face's size, else those the whole-frame
        # detector pass sees), so face-less stretches of video stay fast.
        thorough = self._searching % self.redetect_every == 0
        self._searching += 1
        if thorough:
            min_face = None
        elif self._last_size is not None:
            min_face = max(self.analyzer.min_face, 0.5 * self._last_size)
        else:
            min_face = math.inf
        faces = self.analyzer.detect(frame, min_face=min_face)
        face = self.pick(faces) if faces else None
        if face is not None:
            self._searching = 0
            self._since_detect = 0
        return face

    def _follow(self, frame: np.ndarray) -> Face | None:
        previous = self._last
        self._since_detect += 1
        face = self.analyzer.landmarks_in(frame, previous.box)
        ok = face is not None and not _drifted(previous, face)
        if ok and self._since_detect < self.redetect_every:
            face.score = previous.score
            return face
        self._since_detect = 0
        faces = self.analyzer.detect(frame, min_face=max(self.analyzer.min_face, 0.5 * previous.size))
        best = max(faces, key=lambda f: box_iou(f.box, previous.box), default=None)
        if best is not None and box_iou(best.box, previous.box) >= 0.2:
            return best
        if ok:  # the detector missed a face the mesh still fits: keep it until the next check
            face.score = previous.score
            return face
        return None

    def _smooth(self, face: Face, restart: bool) -> Face:
        if self._filter is None:
            return Face(box=face.box.copy(), score=face.score, landmarks=face.landmarks.copy())
        if restart:
            self._filter.reset()
            self._scale = regions.face_scale(face.landmarks)
        points = (self._filter(face.landmarks / self._scale) * self._scale).astype(np.float32)
        return Face(box=landmarks_box(points), score=face.score, landmarks=points)
