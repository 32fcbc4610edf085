"""Find faces and their 478 FaceMesh landmarks with the mediapipe models shipped in the wheel.

FaceMesh alone misses faces that are small in the frame, so faces are found with the full-range
FaceDetection model (run on the whole frame and, for small faces, on overlapping tiles), then FaceMesh
runs on a square crop around each face scaled to a size it handles well, and the landmarks are mapped
back to frame pixels.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import types
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

# Detector input size of the full-range model, and the smallest face (px at that size) it finds reliably.
_DETECTOR_INPUT = 192
_DETECTOR_MIN_FACE = 14
# FaceMesh input: the crop around a face is this many times the face box, resized to _MESH_SIDE.
_MESH_CONTEXT = 1.8
_MESH_SIDE = 320


@dataclass
class Face:
    box: np.ndarray  # (4,) float32 x0, y0, x1, y1 in frame pixels: the landmarks' bounding box
    score: float  # detector confidence; 1.0 for faces from landmarks_in(), which runs no detector
    landmarks: np.ndarray  # (478, 2) float32 x, y in frame pixels (mediapipe FaceMesh topology)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], np.float32)

    @property
    def size(self) -> float:
        """The larger side of the box in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@contextlib.contextmanager
def _quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """Send fd 2 to /dev/null: mediapipe's C++ side (TF Lite, absl) logs there once per graph start,
    before any Python-side setting can reach it."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # mediapipe's package init imports its drawing helpers, which import matplotlib.pyplot (~0.45 s of
    # every job's start-up). We never draw: stand empty modules in for them during the import, then
    # take the stand-ins out of sys.modules so an explicit import elsewhere still gets the real ones.
    stubs = [name for name in ("mediapipe.python.solutions.drawing_utils", "mediapipe.python.solutions.drawing_styles")
             if name not in sys.modules]
    for name in stubs:
        sys.modules[name] = types.ModuleType(name)
    try:
        with _quiet_stderr():
            import mediapipe as mp
    finally:
        for name in stubs:
            sys.modules.pop(name, None)

    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return mp


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def landmarks_box(landmarks: np.ndarray) -> np.ndarray:
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float32)


def _tiles(width: int, height: int, side: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Square tiles (x0, y0, x1, y1) of ``side`` covering the frame, neighbours overlapping by at least ``overlap``."""

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / max(side - overlap, 1)) + 1
        return [round(i * (length - side) / (n - 1)) for i in range(n)]

    return [(x, y, min(x + side, width), min(y + side, height)) for y in starts(height) for x in starts(width)]


class FaceAnalyzer:
    """Mediapipe face detection + FaceMesh. Not thread-safe: use one analyzer per thread.

    ``min_face`` is the smallest face (box width in px) that ``detect()`` looks for. Faces that small
    need the detector to run on tiles of the frame, which costs one detector pass (~8 ms) per tile, so
    raise it when only large faces matter.
    """

    def __init__(self, min_score: float = 0.5, *, min_face: int = 16):
        mp = _import_mediapipe()
        self.min_score = min_score
        self.min_face = min_face
        with _quiet_stderr():
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_score
            )
            # Up to 2 faces in a crop so the one in the middle can be chosen when two people stand close.
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=2, refine_landmarks=True, min_detection_confidence=0.5
            )
            # The graphs start (and log) on their first frame; do it now, quietly.
            blank = np.zeros((64, 64, 3), np.uint8)
            self._detector.process(blank)
            self._mesh.process(blank)
        # The landmark graph logs once more the first time it finds a face.
        self._mesh_quiet = True

    def __enter__(self) -> "FaceAnalyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for graph in (getattr(self, "_detector", None), getattr(self, "_mesh", None)):
            if graph is not None:
                graph.close()
        self._detector = self._mesh = None

    # -- detection -------------------------------------------------------------------------------

    def detect(self, frame: np.ndarray, *, min_face: float | None = None) -> list[Face]:
        """All faces in an RGB uint8 frame, sorted left to right by box centre; faces FaceMesh cannot
        fit are dropped. ``min_face`` overrides the analyzer's smallest face size for this call."""
        frame = _as_rgb(frame)
        detections = self._detect_boxes(frame, self.min_face if min_face is None else min_face)
        faces: list[Face] = []
        for box, score in detections:
            face = self.landmarks_in(frame, box, _expect=box)
            if face is None:
                continue
            face.score = score
            # Two detections (say a whole-frame and a tile one) can land on the same face.
            if any(box_iou(face.box, other.box) > 0.5 for other in faces):
                continue
            faces.append(face)
        faces.sort(key=lambda f: float(f.centre[0]))
        return faces

    def _detect_boxes(self, frame: np.ndarray, min_face: float) -> list[tuple[np.ndarray, float]]:
        """Detector boxes (x0, y0, x1, y1) with scores: the whole frame, then ever smaller tiles until
        faces of ``min_face`` px fill _DETECTOR_MIN_FACE px of the detector input."""
        height, width = frame.shape[:2]
        found: list[tuple[np.ndarray, float]] = []
        side = max(width, height)
        min_face = min(float(min_face), float(side))  # math.inf: the whole-frame pass only
        smallest_tile = max(_DETECTOR_INPUT, math.ceil(_DETECTOR_INPUT * min_face / _DETECTOR_MIN_FACE))
        tiles = [(0, 0, width, height)]
        while True:
            for x0, y0, x1, y1 in tiles:
                for box, score in self._detect_once(frame[y0:y1, x0:x1]):
                    box = box + np.array([x0, y0, x0, y0], np.float32)
                    # A face cut by a tile edge (not a frame edge) is found whole in the neighbouring tile.
                    margin = 2.0
                    cut = (
                        (x0 > 0 and box[0] <= x0 + margin)
                        or (y0 > 0 and box[1] <= y0 + margin)
                        or (x1 < width and box[2] >= x1 - margin)
                        or (y1 < height and box[3] >= y1 - margin)
                    )
                    if not cut and not any(box_iou(box, seen) > 0.3 for seen, _ in found):
                        found.append((box, score))
            missed = _DETECTOR_MIN_FACE * side / _DETECTOR_INPUT  # faces smaller than this were not seen
            if missed <= min_face or side <= smallest_tile:
                return found
            side = max(smallest_tile, side // 3)
            # Overlap so that every face the coarser pass missed lies whole (with context) inside a tile.
            tiles = _tiles(width, height, side, min(round(1.5 * missed), side // 2))

    def _detect_once(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        height, width = image.shape[:2]
        result = self._detector.process(np.ascontiguousarray(image))
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height],
                np.float32,
            )
            boxes.append((box, float(det.score[0])))
        return boxes

    # -- landmarks -------------------------------------------------------------------------------

    def landmarks_in(self, frame: np.ndarray, box: np.ndarray, *, _expect: np.ndarray | None = None) -> Face | None:
        """FaceMesh only, on a square crop around ``box`` (x0, y0, x1, y1); None when no face is there.
        Cheap enough to run every frame while tracking."""
        frame = _as_rgb(frame)
        box = np.asarray(box, np.float32)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        crop_side = max(float(box[2] - box[0]), float(box[3] - box[1]), 8.0) * _MESH_CONTEXT
        x0, y0 = cx - crop_side / 2, cy - crop_side / 2
        scale = _MESH_SIDE / crop_side
        # Crop, pad beyond the frame and resize in one affine warp; area-average when shrinking.
        if scale < 1:
            ix0, iy0 = int(math.floor(x0)), int(math.floor(y0))
            n = int(math.ceil(crop_side)) + 1
            patch = _padded_crop(frame, ix0, iy0, n)
            crop = cv2.resize(patch, (_MESH_SIDE, _MESH_SIDE), interpolation=cv2.INTER_AREA)
            scale = _MESH_SIDE / n
            x0, y0 = float(ix0), float(iy0)
        else:
            matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
            crop = cv2.warpAffine(
                frame, matrix, (_MESH_SIDE, _MESH_SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        with _quiet_stderr(self._mesh_quiet):
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        self._mesh_quiet = False
        candidates = []
        for face in result.multi_face_landmarks:
            points = np.array([(p.x, p.y) for p in face.landmark], np.float32) * _MESH_SIDE
            points = points / scale + np.array([x0, y0], np.float32)
            candidates.append(points)
        # The face nearest the middle of the crop is the one asked for.
        target = np.array([cx, cy], np.float32)
        points = min(candidates, key=lambda p: float(np.linalg.norm(landmarks_box(p).reshape(2, 2).mean(0) - target)))
        found = landmarks_box(points)
        if _expect is not None:
            # A detection the mesh explains with a different face (a false positive next to a real face).
            centre = found.reshape(2, 2).mean(0)
            w, h = _expect[2] - _expect[0], _expect[3] - _expect[1]
            if abs(centre[0] - cx) > 0.6 * w or abs(centre[1] - cy) > 0.6 * h:
                return None
        return Face(box=found, score=1.0, landmarks=points)


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
    return frame


def _padded_crop(frame: np.ndarray, x0: int, y0: int, n: int) -> np.ndarray:
    """frame[y0:y0+n, x0:x0+n], edge pixels repeated where the square leaves the frame."""
    height, width = frame.shape[:2]
    xs = np.clip(np.arange(x0, x0 + n), 0, width - 1)
    ys = np.clip(np.arange(y0, y0 + n), 0, height - 1)
    inside = x0 >= 0 and y0 >= 0 and x0 + n <= width and y0 + n <= height
    return frame[y0 : y0 + n, x0 : x0 + n] if inside else frame[np.ix_(ys, xs)]
