"""Paint the inside of an open mouth: a dark cavity, upper (and on wide openings lower) teeth and a
tongue, coloured from the face so it matches its lighting."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...face import regions as R
from .warp import MouthWarp, smoothstep


@dataclass(frozen=True)
class MouthColours:
    cavity: np.ndarray  # RGB float32
    teeth: np.ndarray
    tongue: np.ndarray
    line: np.ndarray  # where closed lips meet


def mouth_colours(frame: np.ndarray, lm: np.ndarray) -> MouthColours:
    """Derive colours from the lips and the skin so a dark face doesn't get neon-white teeth."""
    h, w = frame.shape[:2]
    lips = np.zeros((h, w), np.uint8)
    cv2.fillPoly(lips, [np.round(lm[list(R.LIPS_OUTER)]).astype(np.int32)], 1)
    cv2.fillPoly(lips, [np.round(lm[list(R.LIPS_INNER)]).astype(np.int32)], 0)
    lip = frame[lips > 0].reshape(-1, 3).astype(np.float32)
    lip = np.median(lip, axis=0) if len(lip) else np.array([150, 80, 80], np.float32)
    # Skin: a patch on the cheeks / between nose and lip.
    pts = lm[[R.SUBNASALE, R.MOUTH_LEFT, R.MOUTH_RIGHT]].mean(axis=0)
    x, y = int(np.clip(pts[0], 0, w - 1)), int(np.clip(pts[1], 0, h - 1))
    r = max(2, int(0.03 * np.linalg.norm(lm[R.LEFT_EYE_OUTER] - lm[R.RIGHT_EYE_OUTER])))
    skin = frame[max(0, y - r): y + r, max(0, x - r): x + r].reshape(-1, 3).astype(np.float32)
    luma = float(np.mean(skin @ np.array([0.299, 0.587, 0.114], np.float32))) if len(skin) else 150.0
    light = float(np.clip(luma / 170.0, 0.45, 1.0))
    return MouthColours(
        cavity=lip * 0.18 + 6,
        teeth=np.array([236, 230, 214], np.float32) * light,
        tongue=lip * 0.55 + np.array([12, 0, 0], np.float32),
        line=lip * 0.55,
    )


def paint_interior(roi_rgb: np.ndarray, warp: MouthWarp, colours: MouthColours, scale: float) -> np.ndarray:
    """Composite the mouth interior into the warped ROI (uint8, in place; also returned)."""
    rows, cols = np.nonzero(warp.seam > 0.01)
    if rows.size:
        box = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        seam = warp.seam[box][..., None]
        roi_rgb[box] = (roi_rgb[box] * (1 - seam) + colours.line * seam + 0.5).astype(np.uint8)
    rows, cols = np.nonzero(warp.interior > 0.01)
    if rows.size == 0:
        return roi_rgb
    # Work only on the opening's bounding box: it is a small part of the lower-face ROI.
    box = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    alpha, d, a, gap = warp.interior[box], warp.depth[box], np.abs(warp.across[box]), warp.gap_px[box]
    dist_top = d * gap  # px below the upper inner lip
    dist_bot = (1 - d) * gap  # px above the lower inner lip
    teeth_w = smoothstep(0.85, 0.55, a)  # teeth stop short of the corners
    upper_h = np.minimum(0.45 * gap, 0.075 * scale)
    upper = smoothstep(upper_h, upper_h * 0.75, dist_top) * teeth_w
    lower_h = np.clip(gap - 0.13 * scale, 0, 0.05 * scale)
    lower = smoothstep(lower_h, lower_h * 0.7, dist_bot) * (lower_h > 0.5) * teeth_w
    tongue = smoothstep(0.55, 0.8, d) * smoothstep(0.7, 0.4, a) * smoothstep(0.06 * scale, 0.12 * scale, gap)

    # Cavity darkens towards the corners and the back; teeth are shaded at the sides and the gum line.
    shade = (1 - 0.45 * a**2)[..., None]
    layer = colours.cavity * (0.8 + 0.4 * (1 - np.abs(d - 0.5) * 2))[..., None] * shade
    layer = layer * (1 - tongue[..., None]) + colours.tongue * tongue[..., None] * shade
    teeth_shade = (0.78 + 0.22 * smoothstep(0, upper_h * 0.5 + 1e-3, dist_top))[..., None] * shade
    layer = layer * (1 - upper[..., None]) + colours.teeth * teeth_shade * upper[..., None]
    layer = layer * (1 - lower[..., None]) + colours.teeth * 0.85 * shade * lower[..., None]
    alpha = alpha[..., None]
    roi_rgb[box] = np.clip(roi_rgb[box] * (1 - alpha) + layer * alpha + 0.5, 0, 255).astype(np.uint8)
    return roi_rgb
