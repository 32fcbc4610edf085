"""Paint the inside of an open mouth: upper teeth under the upper lip, lower teeth mostly hidden, a
gradient into the dark throat and a tongue, coloured from the face so it matches its lighting, then
softened and grained like the photo. Where the person's own interior is known (interior.py) it is laid
over the paint, which then only shows where the output opens wider than the source did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...face import regions as R
from .interior import InteriorTexture, PhotoLook, grain_like, photo_look, sample
from .warp import MouthWarp, smoothstep


@dataclass(frozen=True)
class MouthColours:
    cavity: np.ndarray  # RGB float32
    teeth: np.ndarray
    tongue: np.ndarray
    line: np.ndarray  # where closed lips meet
    lip: np.ndarray
    look: PhotoLook


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
        cavity=lip * 0.24 + 3,
        # Enamel is a warm off-white, a little greyer than paper.
        teeth=np.array([222, 214, 196], np.float32) * light,
        tongue=lip * 0.62 + np.array([10, -4, -2], np.float32),
        line=lip * 0.55,
        lip=lip.astype(np.float32),
        look=photo_look(frame, lm),
    )


# Tooth edges along the arch, in `across` units (-1..1 corner to corner): centrals, laterals, canines,
# premolars; they crowd towards the corners because the arch turns away from the camera.
TOOTH_EDGES = np.array([0.0, 0.34, 0.58, 0.78, 0.92])


def _teeth_pattern(a: np.ndarray, px_per_across: float) -> tuple[np.ndarray, np.ndarray]:
    """(gap darkness 0..1 between teeth, position 0..1 across the tooth, 0.5 at its middle)."""
    edges = np.concatenate([-TOOTH_EDGES[:0:-1], TOOTH_EDGES])
    k = np.clip(np.searchsorted(edges, a), 1, len(edges) - 1)
    lo, hi = edges[k - 1], edges[k]
    t = np.clip((a - lo) / (hi - lo), 0, 1)
    dist = np.minimum(a - lo, hi - a) * px_per_across  # px to the nearest tooth edge
    gap = np.exp(-(dist / 0.8) ** 2)
    return gap, t


def _paint(alpha, d, a, gap, colours: MouthColours, scale: float, px_per_across: float) -> np.ndarray:
    dist_top = d * gap  # px below the upper inner lip
    dist_bot = (1 - d) * gap  # px above the lower inner lip
    side = a**2
    # Upper teeth: shorter towards the corners, each crown's corners rounded (notches at the bottom).
    gaps, t = _teeth_pattern(a, px_per_across)
    crown = 1 - 0.35 * (2 * t - 1) ** 4
    upper_h = np.minimum(0.5 * gap, 0.085 * scale) * (1 - 0.45 * side) * crown
    upper = smoothstep(upper_h + 0.6, upper_h - 0.6, dist_top) * smoothstep(0.95, 0.75, np.abs(a))
    lower_h = np.clip(gap - 0.16 * scale, 0, 0.025 * scale) * (1 - 0.5 * side)
    lower = smoothstep(lower_h + 0.5, lower_h - 0.5, dist_bot) * (lower_h > 0.5) * smoothstep(0.6, 0.3, np.abs(a))
    # Tongue: a dome behind the lower teeth, up to ~40 % of the opening, only once the jaw drops.
    tongue_h = np.minimum(0.4 * gap, 0.09 * scale) * np.sqrt(np.clip(1 - (a / 0.8) ** 2, 0, 1))
    tongue = smoothstep(tongue_h, tongue_h - max(1.0, 0.02 * scale), dist_bot) * smoothstep(
        0.06 * scale, 0.11 * scale, gap)

    # Throat: darkest in the middle of the opening and at the corners, lighter near the lips.
    near_lip = np.maximum(smoothstep(0.08 * scale, 0, dist_top), smoothstep(0.06 * scale, 0, dist_bot))
    shade = (1 - 0.5 * side)[..., None]
    layer = colours.cavity * (0.6 + 0.6 * near_lip)[..., None] * shade
    # The tongue's top catches light, its flanks fall into the dark.
    tongue_shade = (0.65 + 0.35 * smoothstep(0, tongue_h + 1e-3, dist_bot))[..., None] * (1 - 0.6 * side)[..., None]
    layer = layer * (1 - tongue[..., None]) + colours.tongue * tongue_shade * tongue[..., None]
    # Teeth: the upper lip shades the gum line, the corners are in shadow, dark seams between crowns.
    teeth_shade = (0.72 + 0.28 * smoothstep(0, 0.5 * upper_h + 1e-3, dist_top)) * (1 - 0.55 * side) * (1 - 0.3 * gaps)
    layer = layer * (1 - upper[..., None]) + colours.teeth * teeth_shade[..., None] * upper[..., None]
    lower_shade = 0.62 * (1 - 0.5 * side) * (1 - 0.4 * gaps)
    # Lower teeth sit behind the lower lip, in shadow and tinted by the tongue around them.
    lower_col = (0.7 * colours.teeth + 0.3 * colours.tongue) * lower_shade[..., None]
    layer = layer * (1 - lower[..., None]) + lower_col * lower[..., None]
    # The wet inner edge of the lips, in their own shadow.
    edge = smoothstep(max(1.2, 0.02 * scale), 0, np.minimum(dist_top, dist_bot)) * (1 - upper * 0.7)
    layer = layer * (1 - 0.5 * edge[..., None]) + colours.line * 0.8 * 0.5 * edge[..., None]
    return layer.astype(np.float32)


def paint_interior(roi_rgb: np.ndarray, warp: MouthWarp, colours: MouthColours, scale: float,
                   real: Optional[InteriorTexture] = None, seed=0) -> np.ndarray:
    """Composite the mouth interior into the warped ROI (uint8, in place; also returned).

    `real`: the person's own interior, laid over the paint where it reaches. `seed`: the grain's.
    """
    rows, cols = np.nonzero(warp.seam > 0.01)
    if rows.size:
        box = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        seam = warp.seam[box][..., None]
        roi_rgb[box] = (roi_rgb[box] * (1 - seam) + colours.line * seam + 0.5).astype(np.uint8)
    rows, cols = np.nonzero(warp.interior > 0.01)
    if rows.size == 0:
        return roi_rgb
    # Work only on the opening's bounding box (plus room for the blur): a small part of the ROI.
    m = 3
    r0, r1 = max(0, rows.min() - m), min(roi_rgb.shape[0], rows.max() + 1 + m)
    c0, c1 = max(0, cols.min() - m), min(roi_rgb.shape[1], cols.max() + 1 + m)
    box = np.s_[r0:r1, c0:c1]
    alpha, d, a, gap = warp.interior[box], warp.depth[box], warp.across[box], warp.gap_px[box]
    step = np.abs(np.diff(a, axis=1))
    px_per_across = 1.0 / max(float(np.median(step[step > 0])) if np.any(step > 0) else 1.0, 1e-3)
    look = colours.look
    layer = _paint(alpha, d, np.abs(a), gap, colours, scale, px_per_across)
    # As soft and as grainy as the photo around it, so the paint doesn't read as a sticker.
    sigma = np.sqrt(max(look.blur**2 - 0.25, 0.0))
    if sigma > 0.2:
        layer = cv2.GaussianBlur(layer, (0, 0), sigma)
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma) * (warp.interior[box] > 0)
    # Grain as in the photo, but weaker in the dark (shot noise grows with light; JPEG crushes shadows).
    level = np.sqrt(np.clip(layer.mean(axis=2) / max(float(colours.lip.mean()), 1.0), 0.16, 1.0))
    layer = layer + grain_like(layer.shape[:2], look, seed) * level[..., None]
    if real is not None:
        rgb, valid = sample(real, a, d * gap, scale, colours.lip)
        valid = valid[..., None]
        layer = layer * (1 - valid) + rgb * valid
    alpha = alpha[..., None]
    roi_rgb[box] = np.clip(roi_rgb[box] * (1 - alpha) + layer * alpha + 0.5, 0, 255).astype(np.uint8)
    return roi_rgb
