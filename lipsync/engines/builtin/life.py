"""Natural life for stills, driven by the seed: blinks at human rates, small head motion, breathing.

Everything is planned up front from a seeded generator, so the same seed gives the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

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


@dataclass
class MotionField:
    """Per-face weight maps, computed once for a still: the head moves, the background stays."""

    head_weight: np.ndarray  # (h/STEP, w/STEP) float32: the fields are smooth, so work coarse
    body_weight: np.ndarray
    pivot: np.ndarray  # neck point, px
    scale: float  # face scale px
    grid_x: np.ndarray  # coarse grid coordinates, px
    grid_y: np.ndarray
    shape: tuple[int, int]  # full frame (h, w)


STEP = 8


def motion_field(shape: tuple[int, int], box: np.ndarray, chin: np.ndarray, scale: float) -> MotionField:
    h, w = shape
    gy, gx = np.mgrid[0:h + STEP:STEP, 0:w + STEP:STEP].astype(np.float32)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) * 0.95, (box[3] - box[1]) * 1.15
    d = np.sqrt(((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2)
    head = np.clip(1.6 - d, 0, 1) ** 1.5  # 1 on the head, fading out over about its own size
    head = cv2.GaussianBlur(head, (0, 0), max(0.5, scale * 0.1 / STEP))
    below = np.clip((gy - chin[1]) / (0.6 * scale), 0, 1)
    body = below * np.clip(1.4 - np.abs(gx - cx) / (2.2 * rx), 0, 1)
    return MotionField(head.astype(np.float32), body.astype(np.float32), chin.astype(np.float32), scale, gx, gy, shape)


def motion_maps(fields: list[MotionField], plans: list[LifePlan], index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Backward maps moving each head (roll about the neck, shift, nod) and its torso (breathing),
    each face by its own plan."""
    if not fields:
        return None
    disp_x, disp_y = np.zeros_like(fields[0].grid_x), np.zeros_like(fields[0].grid_y)
    for f, plan in zip(fields, plans):
        a = np.deg2rad(plan.angle[index])
        tx = plan.shift[index, 0] * f.scale
        ty = (plan.shift[index, 1] + plan.nod[index]) * f.scale
        px, py = f.pivot
        # Inverse rotation about the pivot, then inverse shift: where each output pixel came from.
        dx, dy = f.grid_x - px - tx, f.grid_y - py - ty
        sx = px + np.cos(a) * dx + np.sin(a) * dy
        sy = py - np.sin(a) * dx + np.cos(a) * dy
        disp_x += f.head_weight * (sx - f.grid_x)
        disp_y += f.head_weight * (sy - f.grid_y)
        disp_y += f.body_weight * (-(f.grid_y - py) * plan.breath[index])
    h, w = fields[0].shape
    gh, gw = disp_x.shape
    # Resize the coarse grid (whose last node lies at or past the edge) onto the full frame.
    up_x = cv2.resize(disp_x, (gw * STEP, gh * STEP), interpolation=cv2.INTER_LINEAR)[:h, :w]
    up_y = cv2.resize(disp_y, (gw * STEP, gh * STEP), interpolation=cv2.INTER_LINEAR)[:h, :w]
    ix, iy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return ix + up_x, iy + up_y
