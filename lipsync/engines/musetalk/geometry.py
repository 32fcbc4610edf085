"""Crop and paste-back geometry for MuseTalk, pure numpy/OpenCV (FACTS.md sections 5 and 8).

Landmarks are 68 points in the iBUG layout (0-16 jaw, 27-35 nose, 48-67 lips), (x, y) in frame pixels; the
adapter maps our FaceMesh points to them. Images are HxWx3 uint8 in any channel order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

CROP = 256
EXTRA_MARGIN = 10  # v1.5 moves the box's bottom down 10 px (inference.py:170-172) so the chin can open
EXPAND = 1.5  # paste-back works in the square 1.5x box around the face box (blending.py:7-13)
BLUR = 0.05  # feather kernel, fraction of that square's width (blending.py:81-82)
JAW = slice(0, 17)
NOSE_BRIDGE = 29

Box = tuple[int, int, int, int]  # x1, y1, x2, y2; x2 and y2 exclusive


def crop_box(landmarks: np.ndarray, frame_shape: tuple, bbox_shift: int = 0,
             extra_margin: int = EXTRA_MARGIN) -> Optional[Box]:
    """MuseTalk's face box (preprocessing.py:113-124): from the nose-bridge point 29 up by as much as the
    chin lies below it, the landmarks' x extent, the lowest point + `extra_margin` (clamped to the frame).
    Not square. None where MuseTalk would fall back to the face detector's box (empty box or x1 < 0)."""
    lm = np.asarray(landmarks).astype(np.int32)  # MuseTalk truncates the keypoints to int32 first
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks: expected (68, 2), got {lm.shape}")
    lm = lm.copy()
    lm[NOSE_BRIDGE, 1] += bbox_shift  # in place, as MuseTalk's view does: it can move the lowest point too
    y_max = int(lm[:, 1].max())
    y1 = max(0, int(lm[NOSE_BRIDGE, 1]) - (y_max - int(lm[NOSE_BRIDGE, 1])))
    x1, x2 = int(lm[:, 0].min()), int(lm[:, 0].max())
    if y_max - y1 <= 0 or x2 - x1 <= 0 or x1 < 0:
        return None
    height, width = frame_shape[:2]
    x2 = min(x2, width)  # numpy slicing would clip it anyway; the box must say what the crop holds
    y2 = min(y_max + extra_margin, height)
    if y2 - y1 <= 0 or x2 - x1 <= 0:
        return None
    return x1, y1, x2, y2


def crop_face(frame: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels resized to 256x256 with OpenCV's Lanczos (8x8), as MuseTalk does."""
    x1, y1, x2, y2 = box
    return cv2.resize(frame[y1:y2, x1:x2], (CROP, CROP), interpolation=cv2.INTER_LANCZOS4)


def expand_box(box: Box, expand: float = EXPAND) -> Box:
    """The square around the box's centre, half-side int(max(w, h) // 2 * expand) (get_crop_box)."""
    x1, y1, x2, y2 = box
    xc, yc = (x1 + x2) // 2, (y1 + y2) // 2
    s = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return xc - s, yc - s, xc + s, yc + s


@dataclass(frozen=True)
class FaceMask:
    region: Box  # where the alpha applies: the 1.5x square clipped to the frame
    alpha: np.ndarray  # float32 (h, w) in [0, 1], region-sized


def lower_face_mask(landmarks: np.ndarray, box: Box, frame_shape: tuple) -> FaceMask:
    """The feathered lower-face mask: jaw, cheeks and lips, from the jaw line down to the box's bottom
    (the +10 px margin lets an opened chin through), inside the face box and below the middle of the
    1.5x square (MuseTalk's upper_boundary_ratio 0.5, about the nose bridge), never above point 29."""
    height, width = frame_shape[:2]
    lx1, ly1, lx2, ly2 = expand_box(box)
    region = (max(lx1, 0), max(ly1, 0), min(lx2, width), min(ly2, height))
    rx1, ry1, rx2, ry2 = region
    lm = np.asarray(landmarks, dtype=np.float64)
    jaw = lm[JAW]
    drop = max(0.0, box[3] - jaw[:, 1].max())
    hull = cv2.convexHull(np.round(np.concatenate([jaw, jaw + (0, drop)]) - (rx1, ry1)).astype(np.int32))
    solid = np.zeros((ry2 - ry1, rx2 - rx1), np.uint8)
    cv2.fillConvexPoly(solid, hull, 255)
    k = int(BLUR * (lx2 - lx1) // 2 * 2) + 1
    # The cut sits k//2 below the boundary so that the feathered edge does not reach above it.
    top = max((ly1 + ly2) // 2, int(np.ceil(lm[NOSE_BRIDGE, 1]))) + k // 2
    inside = np.zeros_like(solid)
    x1, y1, x2, y2 = box
    inside[max(y1, top) - ry1:max(y2 - ry1, 0), max(x1 - rx1, 0):max(x2 - rx1, 0)] = 255
    solid = np.minimum(solid, inside)
    alpha = cv2.GaussianBlur(solid, (k, k), 0).astype(np.float32) / 255.0
    return FaceMask(region, alpha)


def paste_back(frame: np.ndarray, generated: np.ndarray, box: Box, mask: FaceMask) -> np.ndarray:
    """A new frame: the generated 256x256 crop resized (bilinear) into the box, blended through the mask."""
    x1, y1, x2, y2 = box
    pasted = frame.copy()
    pasted[y1:y2, x1:x2] = cv2.resize(generated, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    rx1, ry1, rx2, ry2 = mask.region
    out = frame.copy()
    a = mask.alpha[..., None]
    src = frame[ry1:ry2, rx1:rx2].astype(np.float32)
    gen = pasted[ry1:ry2, rx1:rx2].astype(np.float32)
    out[ry1:ry2, rx1:rx2] = np.clip(np.round(src + a * (gen - src)), 0, 255).astype(np.uint8)
    return out
