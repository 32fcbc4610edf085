"""The person's own mouth interior, and how grainy and soft the photo is around the mouth.

An open source mouth (a still with teeth showing, or dub frames where the speaker opens up) is sampled
into a small texture in mouth-aligned coordinates: columns run corner to corner along the inner lips,
rows run down from the upper inner lip in source pixels. Rows are anchored to the upper lip, so when the
output opens wider than the source the teeth stay with the upper lip and what lies below the source's
opening is left to the painter (darkness, tongue); when it opens less, the lower lip covers the teeth
from below, as a jaw does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...face import regions as R
from .warp import MouthGeometry, smoothstep

MIN_OPEN = 0.05  # source gap at the centre (face scales) below which there is no interior to take
MIN_OPEN_PX = 3.0
BANK_SIZE = 8
BANK_BINS = np.linspace(MIN_OPEN, 0.28, BANK_SIZE + 1)[1:-1]  # opening bins, one texture each
EDGE_MARGIN = 0.03  # FaceMesh's inner contour sits on the teeth; mouth_warp widens it by this (face scales)


@dataclass(frozen=True)
class InteriorTexture:
    rgb: np.ndarray  # (rows, cols, 3) float32: source pixels, row 0 at the upper inner lip
    valid: np.ndarray  # (rows, cols) float32 0..1: inside the source's opening
    opening: float  # source gap at the centre, face scales
    scale: float  # source face scale, px
    half_width: float  # source inner half-width, px (column `pad` + half_width*across)
    pad: int
    lip: np.ndarray  # median lip colour of that frame (RGB), for colour matching


def capture(frame: np.ndarray, geo: MouthGeometry, lip: np.ndarray) -> Optional[InteriorTexture]:
    """The source's own inner mouth as a texture, or None where the mouth is (nearly) closed."""
    f, s = geo.frame, geo.frame.scale
    zero = np.array([0.0])
    gap_c = float(geo.lower_inner(zero)[0] - geo.upper_inner(zero)[0])
    if gap_c < max(MIN_OPEN * s, MIN_OPEN_PX):
        return None
    hw = geo.inner_half_width
    pad = 2
    u = np.arange(-int(np.ceil(hw)) - pad, int(np.ceil(hw)) + pad + 1, dtype=np.float64)
    top = geo.upper_inner(u) - EDGE_MARGIN * s / 2
    bottom = geo.lower_inner(u) + EDGE_MARGIN * s / 2
    rows = int(np.ceil(bottom.max() - top.min())) + 2
    r = np.arange(rows, dtype=np.float64)[:, None]
    v = top[None, :] + r
    x, y = f.to_image(np.broadcast_to(u, v.shape), v)
    rgb = cv2.remap(frame, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    depth = (geo.lower_inner(u) - top)[None, :]  # up to the raw lower inner lip: below it is lip, not mouth
    # The last rows are the lower lip's inner edge: fade them so the painter's darkness takes over.
    valid = smoothstep(depth, depth - max(1.5, 0.02 * s), r) * smoothstep(hw + 1, hw - 1, np.abs(u))[None, :]
    return InteriorTexture(rgb, valid.astype(np.float32), gap_c / s, s, hw, int(np.ceil(hw)) + pad,
                           np.asarray(lip, np.float32))


class InteriorBank:
    """Up to BANK_SIZE source interiors, one per opening bin (the newest wins: lighting drifts)."""

    def __init__(self):
        self.slots: dict[int, InteriorTexture] = {}

    def __len__(self) -> int:
        return len(self.slots)

    def add(self, frame: np.ndarray, geo: MouthGeometry, lip: np.ndarray) -> Optional[InteriorTexture]:
        tex = capture(frame, geo, lip)
        if tex is not None:
            self.slots[int(np.searchsorted(BANK_BINS, tex.opening))] = tex
        return tex

    def nearest(self, gap: float, current: Optional[InteriorTexture] = None) -> Optional[InteriorTexture]:
        """The texture whose opening is nearest the wanted gap (face scales); one that opens less than
        wanted leaves more to paint, so it counts double; the current frame's own counts half."""
        best, best_cost = None, np.inf
        for tex in list(self.slots.values()) + ([current] if current is not None else []):
            d = tex.opening - gap
            cost = (d if d >= 0 else -2 * d) * (0.5 if tex is current else 1.0)
            if cost < best_cost:
                best, best_cost = tex, cost
        return best


def sample(tex: InteriorTexture, across: np.ndarray, dist_top: np.ndarray, scale: float,
           lip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture colour (colour-matched to `lip`) and validity at output pixels given by `across`
    (-1..1 corner to corner) and `dist_top` (px below the upper inner lip at face scale `scale`)."""
    cols = (tex.pad + across * tex.half_width).astype(np.float32)
    rows = (dist_top * (tex.scale / scale)).astype(np.float32)
    rgb = cv2.remap(tex.rgb, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.remap(tex.valid, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Per-channel gain from the lips: the same mouth under this frame's light.
    gain = np.clip(np.asarray(lip, np.float32) / np.maximum(tex.lip, 1.0), 0.7, 1.4)
    return rgb * gain, valid


@dataclass(frozen=True)
class PhotoLook:
    grain: float  # robust std of the skin's high-pass (gray levels)
    blur: float  # Gaussian sigma (px) of the photo's edges around the mouth


HIGH_PASS_SIGMA = 1.5


def high_pass(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), HIGH_PASS_SIGMA)


def robust_std(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64).ravel()
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def photo_look(frame: np.ndarray, lm: np.ndarray) -> PhotoLook:
    """Grain from the skin around the lips; blur from the lips' edges."""
    h, w = frame.shape[:2]
    outer = lm[list(R.LIPS_OUTER)]
    (x0, y0), (x1, y1) = outer.min(axis=0), outer.max(axis=0)
    mw = max(x1 - x0, 4.0)
    bx0, by0 = int(max(0, x0 - 0.4 * mw)), int(max(0, y0 - 0.4 * mw))
    bx1, by1 = int(min(w, x1 + 0.4 * mw)), int(min(h, y1 + 0.4 * mw))
    if bx1 - bx0 < 8 or by1 - by0 < 8:
        return PhotoLook(0.0, 0.5)
    gray = cv2.cvtColor(np.ascontiguousarray(frame[by0:by1, bx0:bx1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    lips = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(lips, [np.round(outer - [bx0, by0]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((5, 5), np.uint8))
    grain = robust_std(high_pass(gray)[lips == 0])
    # An edge blurred by sigma0 has gradient energy ∝ 1/sigma0; blurring it by 1 more px multiplies that
    # by r = sigma0 / sqrt(sigma0² + 1), so sigma0 = r / sqrt(1 - r²). Measured on the lips' edges.
    band = cv2.dilate(lips, np.ones((5, 5), np.uint8)) - cv2.erode(lips, np.ones((7, 7), np.uint8))

    def energy(g: np.ndarray) -> float:
        gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        return float(np.sum((gx**2 + gy**2)[band > 0]))

    e0 = energy(gray)
    r = energy(cv2.GaussianBlur(gray, (0, 0), 1.0)) / max(e0, 1e-6)
    r = min(max(r, 0.05), 0.97)
    return PhotoLook(grain, float(np.clip(r / np.sqrt(1 - r * r), 0.3, 3.0)))


def grain_like(shape: tuple[int, int], look: PhotoLook, seed) -> np.ndarray:
    """Noise whose high-pass robust std is look.grain, as soft as the photo: (h, w, 3) float32."""
    if look.grain <= 0 or shape[0] < 2 or shape[1] < 2:
        return np.zeros((*shape, 3), np.float32)
    rng = np.random.default_rng(seed)
    luma = rng.standard_normal(shape).astype(np.float32)
    chroma = rng.standard_normal((*shape, 3)).astype(np.float32) * 0.3
    n = luma[..., None] + chroma
    if look.blur > 0.5:
        n = cv2.GaussianBlur(n, (0, 0), np.sqrt(look.blur**2 - 0.25))
    level = robust_std(high_pass(n.mean(axis=2)))
    return n * (look.grain / max(level, 1e-6))
