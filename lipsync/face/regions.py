"""Named groups of mediapipe FaceMesh landmark indices, and measurements on a face.

The groups are the edge sets of ``mediapipe.python.solutions.face_mesh_connections`` (FACEMESH_LIPS,
FACEMESH_LEFT_EYE, FACEMESH_RIGHT_EYE, FACEMESH_FACE_OVAL) ordered into contours; tests/test_face.py
checks them against those frozensets. Open contours run from the image-left end to the image-right end
of a frontal face. LEFT/RIGHT are the subject's, as in mediapipe: the subject's left eye (362..263) is
on the image's right.

Measurements take a (478, 2) landmark array (or a ``Face``) in pixels and return sizes relative to
``face_scale`` so they do not depend on the resolution or the distance to the camera.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    from .landmarks import Face

# Lips: corners 61/291 (outer) and 78/308 (inner).
UPPER_LIP_OUTER: list[int] = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LOWER_LIP_OUTER: list[int] = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
UPPER_LIP_INNER: list[int] = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_LIP_INNER: list[int] = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
# Closed contours (first point not repeated): along the upper lip, back along the lower one.
LIPS_OUTER: list[int] = UPPER_LIP_OUTER + LOWER_LIP_OUTER[-2:0:-1]
LIPS_INNER: list[int] = UPPER_LIP_INNER + LOWER_LIP_INNER[-2:0:-1]

# Eyes: corners 33/133 (right eye, outer/inner) and 362/263 (left eye, inner/outer).
RIGHT_EYE_UPPER: list[int] = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_EYE_LOWER: list[int] = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_EYE_UPPER: list[int] = [362, 398, 384, 385, 386, 387, 388, 466, 263]
LEFT_EYE_LOWER: list[int] = [362, 382, 381, 380, 374, 373, 390, 249, 263]

# Face outline, closed, clockwise in the image from the top of the forehead (10).
FACE_OVAL: list[int] = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]
# Lower part of the oval, ear to ear (234 .. 454) through the chin (152).
JAW: list[int] = [234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454]

NOSE_TIP: int = 1
SUBNASALE: int = 2  # where the nose meets the upper lip; does not move with the jaw
CHIN: int = 152
MOUTH_LEFT: int = 291  # outer lip corners
MOUTH_RIGHT: int = 61
INNER_MOUTH_LEFT: int = 308  # inner lip corners
INNER_MOUTH_RIGHT: int = 78
LEFT_EYE_OUTER: int = 263  # eye corners
LEFT_EYE_INNER: int = 362
RIGHT_EYE_OUTER: int = 33
RIGHT_EYE_INNER: int = 133
LIP_TOP_INNER: int = 13
LIP_BOTTOM_INNER: int = 14

# Central inner-lip pairs (upper, lower) whose gap is the mouth opening; the corners are left out
# because they touch even in an open mouth.
_INNER_LIP_PAIRS: list[tuple[int, int]] = [(82, 87), (13, 14), (312, 317), (81, 178), (311, 402)]
# Lid pairs around each eye's centre.
_RIGHT_LID_PAIRS: list[tuple[int, int]] = [(160, 144), (159, 145), (158, 153)]
_LEFT_LID_PAIRS: list[tuple[int, int]] = [(385, 380), (386, 374), (387, 373)]
# Eye-centre to subnasale distance divided by the inter-ocular distance on frontal faces (measured on
# the astronaut and Grace Hopper photos); lets the two lengths stand in for each other.
_NOSE_TO_EYES_RATIO = 0.72

Landmarks = Union[np.ndarray, "Face"]


def _points(lm: Landmarks) -> np.ndarray:
    points = getattr(lm, "landmarks", lm)
    return np.asarray(points, dtype=np.float64)[:, :2]


def _pair_gap(points: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    upper = points[[a for a, _ in pairs]]
    lower = points[[b for _, b in pairs]]
    return float(np.linalg.norm(upper - lower, axis=1).mean())


def eye_centres(lm: Landmarks) -> tuple[np.ndarray, np.ndarray]:
    """(subject's left, subject's right) eye centres in pixels, from the lid contours (not the iris)."""
    points = _points(lm)
    left = points[LEFT_EYE_UPPER + LEFT_EYE_LOWER].mean(axis=0)
    right = points[RIGHT_EYE_UPPER + RIGHT_EYE_LOWER].mean(axis=0)
    return left, right


def face_scale(lm: Landmarks) -> float:
    """A face size in pixels that ignores the jaw: the larger of the inter-ocular distance and the
    eyes-to-nose height (rescaled to match), so turning the head (which shortens one of them) or
    opening the mouth barely changes it."""
    points = _points(lm)
    left, right = eye_centres(points)
    inter_ocular = float(np.linalg.norm(left - right))
    eyes_to_nose = float(np.linalg.norm(points[SUBNASALE] - (left + right) / 2))
    return max(inter_ocular, eyes_to_nose / _NOSE_TO_EYES_RATIO, 1e-6)


def mouth_opening(lm: Landmarks) -> float:
    """Gap between the inner lips (mean over the central point pairs) / face_scale; ~0 when closed,
    ~0.3-0.5 for a wide open mouth."""
    points = _points(lm)
    return _pair_gap(points, _INNER_LIP_PAIRS) / face_scale(points)


def mouth_width(lm: Landmarks) -> float:
    """Distance between the mouth corners / face_scale (~0.9-1.0 for a neutral mouth)."""
    points = _points(lm)
    return float(np.linalg.norm(points[MOUTH_LEFT] - points[MOUTH_RIGHT])) / face_scale(points)


def eye_openness(lm: Landmarks) -> tuple[float, float]:
    """(subject's left, subject's right) lid gap / eye width; ~0.3 open, <0.1 shut."""
    points = _points(lm)
    left_width = np.linalg.norm(points[LEFT_EYE_UPPER[0]] - points[LEFT_EYE_UPPER[-1]])
    right_width = np.linalg.norm(points[RIGHT_EYE_UPPER[0]] - points[RIGHT_EYE_UPPER[-1]])
    left = _pair_gap(points, _LEFT_LID_PAIRS) / max(float(left_width), 1e-6)
    right = _pair_gap(points, _RIGHT_LID_PAIRS) / max(float(right_width), 1e-6)
    return left, right

# Points the built-in engine's warps are anchored on.
RIGHT_EYE_OUTER: int = 33  # the subject's right eye: image left
LEFT_EYE_OUTER: int = 263
INNER_MOUTH_RIGHT: int = 78
INNER_MOUTH_LEFT: int = 308
