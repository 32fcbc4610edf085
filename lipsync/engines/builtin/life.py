"""Natural life for stills, driven by the seed: blinks at human rates, small head motion, breathing.

Everything is planned up front from a seeded generator, so the same seed gives the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...dsp import gaussian_filter1d
from .style import Style

BLINK_MEAN_INTERVAL = 3.6  # s; people blink 15-20 times a minute in conversation
BLINK_MIN_INTERVAL = 1.2


@dataclass
class LifePlan:
    blink: np.ndarray  # (n,) 0 open .. 1 shut
    angle: np.ndarray  # (n,) degrees of head roll
    shift: np.ndarray  # (n, 2) head translation in face scales (x, y)
    nod: np.ndarray  # (n,) head pitch proxy: vertical shift in face scales
    breath: np.ndarray  # (n,) relative vertical scale of the torso


def blink_curve(n: int, fps: int, rng: np.random.Generator, rate: float = 1.0) -> np.ndarray:
    out = np.zeros(n, np.float32)
    if rate <= 0:
        return out
    t = rng.uniform(0.3, 2.0)
    close, hold, reopen = 0.07, 0.04, 0.13  # s: fast close, slower opening
    while t < n / fps:
        i0 = int(t * fps)
        for k in range(int((close + hold + reopen) * fps) + 2):
            dt = k / fps
            if dt < close:
                value = dt / close
            elif dt < close + hold:
                value = 1.0
            else:
                value = max(0.0, 1 - (dt - close - hold) / reopen)
            if i0 + k < n:
                out[i0 + k] = max(out[i0 + k], value)
        t += max(BLINK_MIN_INTERVAL, rng.gamma(2.0, BLINK_MEAN_INTERVAL / rate / 2.0))
    return out


def smooth_noise(n: int, fps: int, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Band-limited noise in -1..1 with a correlation time of about `seconds`."""
    pad = int(3 * seconds * fps)
    x = gaussian_filter1d(rng.standard_normal(n + 2 * pad), sigma=seconds * fps / 2, mode="wrap")[pad: pad + n]
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32) if n else x.astype(np.float32)


def plan_life(n: int, fps: int, seed: int, style: Style, talking: np.ndarray | None = None,
              moving: bool = True) -> LifePlan:
    rng = np.random.default_rng(seed)
    blink = blink_curve(n, fps, rng, style.blinks)
    head = style.head if moving else 0.0
    angle = 1.4 * head * smooth_noise(n, fps, rng, 2.5)
    shift = 0.012 * head * np.stack([smooth_noise(n, fps, rng, 3.0), smooth_noise(n, fps, rng, 2.0)], axis=1)
    nod = np.zeros(n, np.float32)
    if talking is not None and n:
        # Speakers nod a little with their speech; centred smoothing keeps it from lagging.
        nod = 0.02 * head * gaussian_filter1d(talking.astype(np.float32), sigma=0.2 * fps)
    t = np.arange(n) / fps
    period = rng.uniform(3.5, 4.5)
    breath = (0.004 * style.breathing * (moving * 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.28))).astype(np.float32)
    return LifePlan(blink, angle.astype(np.float32), shift.astype(np.float32), nod.astype(np.float32), breath)


@dataclass(frozen=True)
class FaceAnchor:
    box: np.ndarray  # face box, px
    chin: np.ndarray  # pivot for head roll, px
    scale: float  # face scale, px


@dataclass
class MotionField:
    """Weight maps for every face of a still, computed once: heads move, the background stays.

    Everything lives on a coarse grid (the fields are smooth) over the region the weights cover, so a
    frame costs one small remap instead of a full-frame one.
    """

    region: tuple[int, int, int, int]  # x0, y0, x1, y1 px
    grid_x: np.ndarray  # coarse grid node coordinates, px
    grid_y: np.ndarray
    heads: list[np.ndarray]  # per face, 1 on the head fading to 0
    bodies: list[np.ndarray]  # per face, the torso below the chin (breathing)
    anchors: list[FaceAnchor]
    identity: tuple[np.ndarray, np.ndarray]  # full-resolution identity maps over the region


STEP = 8


def _head_body(gx, gy, a: FaceAnchor) -> tuple[np.ndarray, np.ndarray]:
    box, s = a.box, a.scale
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) * 0.95, (box[3] - box[1]) * 1.15
    d = np.sqrt(((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2)
    head = np.clip(1.6 - d, 0, 1) ** 1.5  # 1 on the head, fading out over about its own size
    below = np.clip((gy - a.chin[1]) / (0.6 * s), 0, 1) * np.clip((a.chin[1] + 3.5 * s - gy) / (1.5 * s), 0, 1)
    body = below * np.clip(1.4 - np.abs(gx - cx) / (2.2 * rx), 0, 1)
    return head.astype(np.float32), body.astype(np.float32)


def motion_field(shape: tuple[int, int], anchors: list[FaceAnchor]) -> MotionField | None:
    if not anchors:
        return None
    h, w = shape
    # Region: where any weight is non-zero (heads reach 1.6 radii; torsos 3.5 scales below the chin).
    x0, y0, x1, y1 = w, h, 0, 0
    for a in anchors:
        box, s = a.box, a.scale
        rx, ry = (box[2] - box[0]) * 0.95 * 1.6, (box[3] - box[1]) * 1.15 * 1.6
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, x1 = min(x0, cx - max(rx, 3.1 * rx / 1.6)), max(x1, cx + max(rx, 3.1 * rx / 1.6))
        y0, y1 = min(y0, cy - ry), max(y1, max(cy + ry, a.chin[1] + 3.5 * s))
    x0, y0 = int(max(0, x0 - STEP)), int(max(0, y0 - STEP))
    x1, y1 = int(min(w, x1 + STEP)), int(min(h, y1 + STEP))
    # Nodes sit at STEP*k + (STEP-1)/2, where cv2.resize puts source pixel centres, so an upscaled
    # grid lines up exactly with the pixels.
    off = (STEP - 1) / 2
    gy, gx = np.mgrid[y0 + off:y1 + STEP:STEP, x0 + off:x1 + STEP:STEP].astype(np.float32)
    heads, bodies = zip(*(_head_body(gx, gy, a) for a in anchors))
    ix, iy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    return MotionField((x0, y0, x1, y1), gx, gy, list(heads), list(bodies), list(anchors), (ix, iy))


def motion_maps(field: MotionField, plans: list[LifePlan], index: int) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps over `field.region` moving each head (roll about the neck, shift, nod) and its
    torso (breathing), each face by its own plan."""
    disp_x, disp_y = np.zeros_like(field.grid_x), np.zeros_like(field.grid_y)
    gx, gy = field.grid_x, field.grid_y
    for a, head, body, plan in zip(field.anchors, field.heads, field.bodies, plans):
        angle = np.deg2rad(plan.angle[index])
        tx = plan.shift[index, 0] * a.scale
        ty = (plan.shift[index, 1] + plan.nod[index]) * a.scale
        px, py = a.chin
        # Inverse rotation about the pivot, then inverse shift: where each output pixel came from.
        dx, dy = gx - px - tx, gy - py - ty
        sx = px + np.cos(angle) * dx + np.sin(angle) * dy
        sy = py - np.sin(angle) * dx + np.cos(angle) * dy
        disp_x += head * (sx - gx)
        disp_y += head * (sy - gy) - body * (gy - py) * plan.breath[index]
    ix, iy = field.identity
    h, w = ix.shape
    gh, gw = disp_x.shape
    # Resize the coarse grid (whose last node lies at or past the edge) onto the region.
    map_x = cv2.resize(disp_x, (gw * STEP, gh * STEP), interpolation=cv2.INTER_LINEAR)[:h, :w]
    map_y = cv2.resize(disp_y, (gw * STEP, gh * STEP), interpolation=cv2.INTER_LINEAR)[:h, :w]
    map_x += ix
    map_y += iy
    return map_x, map_y
