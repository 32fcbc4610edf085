"""The built-in engine: no download, runs on a 2-core CPU.

Mouth shapes come from the speech track (phones + acoustics); a landmark-driven warp moves lips and jaw,
a painted interior fills the opening, and stills get blinks, head motion and breathing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

import cv2
import numpy as np

from ...face.landmarks import Face
from ...face import regions as R
from ... import kinds
from ..base import Availability, EngineSpec, FrameBatch, Progress, RenderPlan
from . import style as style_mod
from .life import FaceAnchor, motion_field, motion_maps, plan_life
from .interior import InteriorBank
from .mouth import MouthColours, mouth_colours, paint_interior
from .warp import MouthGeometry, MouthShape, eye_geometries, eye_warp, mouth_geometry, mouth_warp

SPEC = EngineSpec(
    name="builtin",
    title="Built-in (fast, offline)",
    description="Landmark-driven mouth and jaw warp with a painted mouth interior. No download; CPU.",
    modes=frozenset(kinds.NAMES),
    options=frozenset({"resolution", "seed", "prompt", "mask_image", "transcript"}),
    prompt_words=tuple(style_mod.VOCABULARY),
    # One frame costs milliseconds, so batches would only add latency; a still's frames may render on
    # two threads (the patch cache is locked and keyed by shape, so the order does not matter).
    batch_size=1,
    parallel=True,
)

MAX_GAP = 0.24  # widest inner-lip gap, in face scales (outer eye-corner distance)
CACHE_SIZE = 256


def availability() -> Availability:
    return Availability("ready")


def load(progress: Optional[Progress] = None, *, allow_download: bool = False) -> None:
    """Nothing to load: the face models ship inside the mediapipe wheel."""
    return None


def frame_cost() -> None:
    """Milliseconds a frame on any CPU (bench/run.py): nothing to warn about before a job."""
    return None


def parse_prompt(prompt: Optional[str]) -> tuple[style_mod.Style, list[str]]:
    return style_mod.parse_prompt(prompt)


def renderer(model: None, plan: RenderPlan) -> "BuiltinRenderer":
    return BuiltinRenderer(plan)


class _FaceState:
    """What the renderer keeps per speaker: colours, and for stills the geometry and a patch cache."""

    def __init__(self):
        self.colours: Optional[MouthColours] = None
        self.colours_at = -10**9
        self.geometry: Optional[MouthGeometry] = None
        self.eyes = None
        self.patches: OrderedDict = OrderedDict()
        self.bank = InteriorBank()  # the source's own open mouths
        self.own = None  # this frame's own interior (dubs)


class BuiltinRenderer:
    def __init__(self, plan: RenderPlan):
        self.plan = plan
        self.style: style_mod.Style = plan.style or style_mod.Style()
        self.still = plan.model != kinds.VIDEO.name
        self.states = [_FaceState() for _ in plan.speakers]
        self.lock = threading.Lock()
        self.life = None
        self.motion = None
        self.motion_plans = []
        if self.still:
            w, h = plan.size
            self.life = [
                plan_life(plan.n_frames, plan.fps, plan.seed + 7919 * i, self.style, talking=sp.track.open)
                for i, sp in enumerate(plan.speakers)
            ]
            anchors = []
            for sp, life in zip(plan.speakers, self.life):
                if sp.face is not None:
                    lm = sp.face.landmarks
                    scale = float(np.linalg.norm(lm[R.LEFT_EYE_OUTER] - lm[R.RIGHT_EYE_OUTER]))
                    anchors.append(FaceAnchor(sp.face.box, lm[R.CHIN], scale))
                    self.motion_plans.append(life)
            if self.style.head > 0 or self.style.breathing > 0:
                self.motion = motion_field((h, w), anchors)

    def mouth_shape(self, k: int, index: int) -> MouthShape:
        track = self.plan.speakers[k].track
        i = min(index, len(track) - 1)
        gap = MAX_GAP * self.style.mouth * float(track.open[i]) * (1 - float(track.closure[i]))
        return MouthShape(gap=gap, width=float(track.width[i]), smile=self.style.smile)

    def render(self, frame: np.ndarray, index: int, faces: list[Optional[Face]]) -> np.ndarray:
        out = frame.copy()
        shape_hw = frame.shape[:2]
        for k, face in enumerate(faces):
            if face is None:
                continue
            state = self.states[k]
            lm = face.landmarks
            if state.colours is None or (not self.still and index - state.colours_at >= 25):
                state.colours, state.colours_at = mouth_colours(frame, lm), index
            geo = state.geometry if self.still and state.geometry else mouth_geometry(lm, shape_hw)
            if self.still:
                state.geometry = geo
            if not self.still or not state.bank:
                state.own = state.bank.add(frame, geo, state.colours.lip)
            self._mouth(frame, out, geo, state, self.mouth_shape(k, index))
            if self.still:
                self._blink(frame, out, lm, state, float(self.life[k].blink[index]))
        if self.motion is not None:
            x0, y0, x1, y1 = self.motion.region
            map_x, map_y = motion_maps(self.motion, self.motion_plans, index)
            out[y0:y1, x0:x1] = cv2.remap(out, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self.plan.mask is not None:
            m = self.plan.mask[..., None]
            out = (frame * (1 - m) + out * m + 0.5).astype(np.uint8)
        return out

    def render_batch(self, batch: FrameBatch) -> list[np.ndarray]:
        return [self.render(frame, batch.start + i, faces)
                for i, (frame, faces) in enumerate(zip(batch.frames, batch.faces))]

    def _mouth(self, src: np.ndarray, out: np.ndarray, geo: MouthGeometry, state: _FaceState, shape: MouthShape):
        x0, y0, x1, y1 = geo.roi
        if x1 - x0 < 4 or y1 - y0 < 4:
            return
        # Half-pixel gap steps and 0.1 width steps are below what the eye (or the encoder) resolves.
        key = (round(shape.gap * geo.frame.scale * 2), round(shape.width * 10), round(shape.smile * 20))
        if self.still:
            with self.lock:  # frames of a still may render in parallel
                patch = state.patches.get(key)
                if patch is not None:
                    state.patches.move_to_end(key)
            if patch is not None:
                out[y0:y1, x0:x1] = patch
                return
            # Render the key's own shape, so a patch never depends on which frame filled the cache.
            shape = MouthShape(gap=key[0] / (2 * geo.frame.scale), width=key[1] / 10, smile=key[2] / 20)
        scale = geo.frame.scale
        warp = mouth_warp(geo, shape)
        roi = cv2.remap(src, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        real = state.bank.nearest(shape.gap, None if self.still else state.own)
        patch = paint_interior(roi, warp, state.colours, scale, real, seed=[k + 1000 for k in key])
        out[y0:y1, x0:x1] = patch
        if self.still:
            # A still's mouth depends only on the shape: reuse patches (bounded LRU).
            with self.lock:
                state.patches[key] = patch
                if len(state.patches) > CACHE_SIZE:
                    state.patches.popitem(last=False)

    def _blink(self, src: np.ndarray, out: np.ndarray, lm: np.ndarray, state: _FaceState, closed: float):
        if closed < 0.02:
            return
        if state.eyes is None:
            state.eyes = eye_geometries(lm, src.shape[:2])
        for geo in state.eyes:
            (x0, y0, x1, y1), mx, my = eye_warp(geo, closed)
            if x1 - x0 > 2 and y1 - y0 > 2:
                out[y0:y1, x0:x1] = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
