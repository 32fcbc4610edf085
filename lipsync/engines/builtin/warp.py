"""Landmark-driven warps of the lower face (mouth, jaw) and the eyelids.

The warps work in a face-aligned frame: u runs along the eye line, v points down the face. In that frame
a mouth or an eyelid is a stack of curves across columns (nose base, upper lip, inner lips, lower lip,
chin, neck). A target shape moves those curves; each column is then remapped piecewise-linearly between
them. Piecewise-linear maps between ordered knots are monotone, so the warp never folds, and a mouth
that is open in the source closes cleanly (its interior segment shrinks to nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...face import regions as R


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray  # mouth centre, image px
    eu: np.ndarray  # unit vector along the eye line (image left → right)
    ev: np.ndarray  # unit vector down the face
    scale: float  # outer eye-corner distance, px

    def to_face(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = pts - self.origin
        return d @ self.eu, d @ self.ev

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.origin[0] + u * self.eu[0] + v * self.ev[0]
        y = self.origin[1] + u * self.eu[1] + v * self.ev[1]
        return x, y


def face_frame(lm: np.ndarray) -> FaceFrame:
    left, right = lm[R.RIGHT_EYE_OUTER], lm[R.LEFT_EYE_OUTER]  # the subject's right eye is on the image left
    eu = (right - left) / max(np.linalg.norm(right - left), 1e-6)
    ev = np.array([-eu[1], eu[0]])
    origin = (lm[R.MOUTH_LEFT] + lm[R.MOUTH_RIGHT]) / 2
    return FaceFrame(origin.astype(np.float64), eu, ev, float(np.linalg.norm(right - left)))


@dataclass(frozen=True)
class Curve:
    """v as a function of u, from landmark samples (clamped beyond the ends)."""

    u: np.ndarray
    v: np.ndarray

    @staticmethod
    def of(frame: FaceFrame, lm: np.ndarray, idx) -> "Curve":
        u, v = frame.to_face(lm[list(idx)].astype(np.float64))
        order = np.argsort(u)
        return Curve(u[order], v[order])

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.u, self.v)


def smoothstep(edge0, edge1, x):
    """0 at edge0, 1 at edge1 (either order); a hard step where the edges coincide."""
    span = np.asarray(edge1 - edge0, dtype=np.float64)
    safe = np.where(np.abs(span) < 1e-6, 1e-6, span)
    t = np.clip((x - edge0) / safe, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def column_map(v: np.ndarray, S: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Map output v to source v per column, piecewise-linearly from target knots T to source knots S.

    S, T: (K, ...) knot stacks, increasing along axis 0. Outside [T0, T_last] the map is the identity.
    """
    S = np.maximum.accumulate(S, axis=0)
    T = np.maximum.accumulate(T, axis=0)
    out = v.copy()
    for k in range(len(S) - 1):
        span = T[k + 1] - T[k]
        sel = (v >= T[k]) & (v < T[k + 1]) & (span > 1e-3)
        if np.any(sel):
            t = (v[sel] - T[k][sel]) / span[sel]
            out[sel] = S[k][sel] + t * (S[k + 1][sel] - S[k][sel])
    return out


@dataclass(frozen=True)
class MouthGeometry:
    """The source mouth, measured once per source frame (once in total for a still image)."""

    frame: FaceFrame
    upper_outer: Curve
    upper_inner: Curve
    lower_inner: Curve
    lower_outer: Curve
    chin: Curve
    v_nose: float
    half_width: float  # outer corners
    inner_half_width: float
    jaw_half_width: float
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (image px, clipped)


def mouth_geometry(lm: np.ndarray, shape: tuple[int, int]) -> MouthGeometry:
    f = face_frame(lm)
    s = f.scale
    uo = Curve.of(f, lm, R.UPPER_LIP_OUTER)
    ui = Curve.of(f, lm, R.UPPER_LIP_INNER)
    li = Curve.of(f, lm, R.LOWER_LIP_INNER)
    lo = Curve.of(f, lm, R.LOWER_LIP_OUTER)
    jaw_u, jaw_v = f.to_face(lm[list(R.JAW)].astype(np.float64))
    below = jaw_v > 0.05 * s  # the part of the jaw line under the mouth
    order = np.argsort(jaw_u[below])
    chin = Curve(jaw_u[below][order], jaw_v[below][order])
    mu, _ = f.to_face(lm[[R.MOUTH_LEFT, R.MOUTH_RIGHT]].astype(np.float64))
    iu, _ = f.to_face(lm[[R.INNER_MOUTH_LEFT, R.INNER_MOUTH_RIGHT]].astype(np.float64))
    _, v_nose = f.to_face(lm[[R.SUBNASALE]].astype(np.float64))
    jaw_half = float(min(-chin.u[0], chin.u[-1])) if len(chin.u) > 1 else 0.6 * s
    half = float(abs(mu[1] - mu[0]) / 2)
    geo = dict(
        frame=f, upper_outer=uo, upper_inner=ui, lower_inner=li, lower_outer=lo, chin=chin,
        v_nose=float(v_nose[0]), half_width=half, inner_half_width=float(max(abs(iu[1] - iu[0]) / 2, 1.0)),
        jaw_half_width=max(jaw_half, 1.3 * half),
    )
    # Region that may change: between the nose base and below the chin, out to the jaw line.
    u_ext = geo["jaw_half_width"]
    v_top = geo["v_nose"]
    v_bot = float(chin.v.max()) + 0.35 * s
    cu = np.array([-u_ext, u_ext, -u_ext, u_ext])
    cv_ = np.array([v_top, v_top, v_bot, v_bot])
    x, y = f.to_image(cu, cv_)
    h, w = shape
    x0, x1 = int(max(0, np.floor(x.min()) - 2)), int(min(w, np.ceil(x.max()) + 2))
    y0, y1 = int(max(0, np.floor(y.min()) - 2)), int(min(h, np.ceil(y.max()) + 2))
    return MouthGeometry(roi=(x0, y0, x1, y1), **geo)


@dataclass(frozen=True)
class MouthShape:
    gap: float  # inner-lip gap at the centre, in face scales (0 = closed)
    width: float = 0.0  # -1 rounded .. 1 spread
    smile: float = 0.0  # 0..1


@dataclass
class MouthWarp:
    """Backward maps for the ROI plus what the interior painter needs, all at ROI resolution."""

    roi: tuple[int, int, int, int]
    map_x: np.ndarray
    map_y: np.ndarray
    interior: np.ndarray  # alpha 0..1 of the mouth opening in the output
    depth: np.ndarray  # 0 at the upper inner lip → 1 at the lower inner lip
    across: np.ndarray  # -1..1 from corner to corner
    gap_px: np.ndarray  # target gap at this column, px
    seam: np.ndarray  # alpha of the line where lips that were apart in the source now meet


UPPER_SHARE = 0.3  # the upper lip takes this share of an opening, the jaw the rest


def mouth_warp(geo: MouthGeometry, shape: MouthShape) -> MouthWarp:
    f, s = geo.frame, geo.frame.scale
    x0, y0, x1, y1 = geo.roi
    X, Y = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    u, v = f.to_face(np.stack([X, Y], axis=-1))

    # Horizontal: widen/narrow the mouth around its centre, fading out around the lips.
    hw = geo.half_width
    target_hw = hw * (1 + (0.10 if shape.width > 0 else 0.15) * shape.width + 0.08 * shape.smile)
    bump = np.clip(1 - (u / (1.6 * hw)) ** 2, 0, 1) ** 2 * np.clip(1 - (v / (0.35 * s)) ** 2, 0, 1) ** 2
    u_src = u - bump * u * (1 - hw / target_hw)

    # Vertical knots per column, source (S) and target (T = S + displacement).
    S_uo, S_ui = geo.upper_outer(u_src), geo.upper_inner(u_src)
    S_li, S_lo = geo.lower_inner(u_src), geo.lower_outer(u_src)
    # Where the source mouth is open, FaceMesh's inner-lip contour sits a little inside the lips, on
    # the teeth: widen it so closing folds the lip edges together instead of leaving a row of teeth.
    margin = 0.03 * s * smoothstep(0.5, 3.0, S_li - S_ui)
    S_ui, S_li = np.maximum(S_ui - margin / 2, S_uo), np.minimum(S_li + margin / 2, S_lo)
    S_ch = np.maximum(geo.chin(u_src), S_lo + 0.1 * s)
    v_top = np.minimum(geo.v_nose, S_uo - 0.12 * s)
    v_bot = S_ch + 0.35 * s

    across = u_src / geo.inner_half_width
    profile = np.sqrt(np.clip(1 - across**2, 0, 1))
    gap_t = shape.gap * s * profile
    gap_s = np.maximum(S_li - S_ui, 0)
    d_gap = gap_t - gap_s
    d_gap_centre = shape.gap * s - max(float(geo.lower_inner(np.array([0.0]))[0] - geo.upper_inner(np.array([0.0]))[0]), 0)
    jaw = smoothstep(geo.jaw_half_width * 0.95, hw * 0.6, np.abs(u_src))
    corner = np.abs(u_src) / hw
    lift = -shape.smile * 0.06 * s * np.where(corner <= 1, corner**2, np.exp(-2 * (corner - 1)))

    d_up = -UPPER_SHARE * d_gap + lift
    d_low = (1 - UPPER_SHARE) * d_gap + lift
    S = np.stack([v_top, S_uo, S_ui, S_li, S_lo, S_ch, v_bot])
    D = np.stack([0 * v, d_up, d_up, d_low, d_low, (1 - UPPER_SHARE) * d_gap_centre * jaw, 0 * v])
    v_src = column_map(v, S, S + D)

    xs, ys = f.to_image(u_src, v_src)
    T_ui, T_li = S_ui + d_up, S_li + d_low
    feather = max(0.6, 0.012 * s)
    interior = smoothstep(0, feather, v - T_ui) * smoothstep(0, feather, T_li - v) * (gap_t > 0.5)
    depth = np.clip((v - T_ui) / np.maximum(T_li - T_ui, 1e-3), 0, 1)
    # Closing a mouth that was open (teeth showing) leaves a row of teeth pixels where the lips meet:
    # cover it with a thin dark lip line.
    closing = smoothstep(0.5, 2.0, gap_s - gap_t) * smoothstep(1.0, 0.8, np.abs(across))
    seam = closing * smoothstep(max(1.0, 0.012 * s), 0, np.abs(v - (T_ui + T_li) / 2)) * (gap_t < 1.5)

    def f32(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)

    # Displacements added to the exact float32 identity, so that untouched pixels stay bit-exact.
    map_x = f32(X) + f32(xs - X)
    map_y = f32(Y) + f32(ys - Y)
    return MouthWarp(geo.roi, map_x, map_y, f32(interior), f32(depth), f32(np.clip(across, -1, 1)), f32(gap_t),
                     f32(seam))


@dataclass(frozen=True)
class EyeGeometry:
    frame: FaceFrame
    upper: Curve
    lower: Curve
    u_range: tuple[float, float]
    roi: tuple[int, int, int, int]


def eye_geometries(lm: np.ndarray, shape: tuple[int, int]) -> list[EyeGeometry]:
    f = face_frame(lm)
    out = []
    h, w = shape
    for upper_idx, lower_idx in ((R.RIGHT_EYE_UPPER, R.RIGHT_EYE_LOWER), (R.LEFT_EYE_UPPER, R.LEFT_EYE_LOWER)):
        up, lo = Curve.of(f, lm, upper_idx), Curve.of(f, lm, lower_idx)
        u_min, u_max = min(up.u[0], lo.u[0]), max(up.u[-1], lo.u[-1])
        ew = u_max - u_min
        pad_u, pad_v = 0.25 * ew, 0.45 * ew
        cu = np.array([u_min - pad_u, u_max + pad_u, u_min - pad_u, u_max + pad_u])
        cv_ = np.array([up.v.min() - pad_v, up.v.min() - pad_v, lo.v.max() + pad_v, lo.v.max() + pad_v])
        x, y = f.to_image(cu, cv_)
        roi = (int(max(0, x.min() - 2)), int(max(0, y.min() - 2)), int(min(w, x.max() + 2)), int(min(h, y.max() + 2)))
        out.append(EyeGeometry(f, up, lo, (float(u_min), float(u_max)), roi))
    return out


def eye_warp(geo: EyeGeometry, closed: float) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Lower the upper lid by `closed` (0 open .. 1 shut) of the lid gap; returns (roi, map_x, map_y)."""
    f = geo.frame
    x0, y0, x1, y1 = geo.roi
    X, Y = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    u, v = f.to_face(np.stack([X, Y], axis=-1))
    U, L = geo.upper(u), geo.lower(u)
    ew = geo.u_range[1] - geo.u_range[0]
    fade = smoothstep(geo.u_range[0] - 0.2 * ew, geo.u_range[0] + 0.1 * ew, u) * smoothstep(
        geo.u_range[1] + 0.2 * ew, geo.u_range[1] - 0.1 * ew, u)
    lid_gap = np.maximum(L - U, 0)
    S = np.stack([U - 0.4 * ew, U, L, L + 0.4 * ew])
    D = np.stack([0 * u, 0.92 * closed * lid_gap * fade, -0.08 * closed * lid_gap * fade, 0 * u])
    v_src = column_map(v, S, S + D)
    xs, ys = f.to_image(u, v_src)
    return geo.roi, xs.astype(np.float32), ys.astype(np.float32)
