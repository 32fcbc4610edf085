"""The MuseTalk engine behind the engine interface: the adapter from our frames, faces and speakers to the
tensor pipeline (`model.MuseTalkPipeline`). Importing it is cheap; torch loads with `load`.

Per batch and speaker: FaceMesh landmarks → the 68-point layout (`IBUG68`) → MuseTalk's crop box
(smoothed over time in a video) → 256x256 crop → the UNet with that speaker's own audio for exactly the
batch's frames → pasted back through the feathered lower-face mask. Frames without the face pass through.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import numpy as np

from ... import kinds
from ...face.tracker import OneEuroFilter
from ..base import Availability, EngineSpec, FrameBatch, FrameCost, Progress, RenderPlan
from . import speed
from .speed import TimedPipeline
from .geometry import Box, FaceMask, crop_box, crop_face, lower_face_mask, paste_back
from .weights import PICKLE_FALLBACK, WEIGHTS

SPEC = EngineSpec(
    name="musetalk",
    title="MuseTalk 1.5 (neural)",
    description="TMElyralab's MuseTalk 1.5: a UNet repaints the lower face (lips, teeth, jaw) from "
                "whisper-tiny audio, one pass per frame. Downloads ~3.9 GB of weights once.",
    modes=frozenset(kinds.NAMES),
    # No seed (latents are the VAE posterior's mode: the same inputs give the same frames), no prompt,
    # no transcript (the model hears the audio itself).
    options=frozenset({"resolution", "mask_image"}),
    weights=WEIGHTS,
    code_licence="MIT",
    hardware="NVIDIA GPU recommended; CPU works slowly",
    batch_size=8,
    parallel=False,
)

NEEDS = ("torch", "diffusers", "transformers", "safetensors")
SAMPLE_RATE = 16000  # whisper's

# FaceMesh (478 points) → iBUG-68, the layout MuseTalk's DWPose face points use (FACTS.md section 5).
# Each 68-point index takes the FaceMesh point at the same place on a frontal face, picked from the
# mediapipe contours in `lipsync.face.regions` so that left/right mirror pairs stay mirrored:
#   0-16  jaw, image-left ear → chin 152 (8) → image-right ear: the FACE_OVAL's lower half from 234 to 454
#   17-26 brows (upper edge), 27-30 the nose ridge: nasion 168, 197, 5, the tip 1 — 29 (the crop's anchor)
#         sits two thirds of the way from nasion to tip as in iBUG; 31-35 the nostrils' lower edge
#   36-47 eyes (corners 33/133, 362/263), 48-59 the outer lip ring (corners 61/291, centres 0/17),
#   60-67 the inner ring (corners 78/308, centres 13/14)
IBUG68 = np.array([
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 1, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips
])

# Box smoothing in a video, in face heights per second (One Euro): steady when the head is still, little
# lag when it moves. The tracker already steadies the landmarks; this stops the crop's integer box, whose
# bottom follows the chin, from shaking the whole generated face.
BOX_MIN_CUTOFF = 0.6  # Hz
BOX_BETA = 4.0
# A still's face is repainted only while its speaker talks (with this many frames either side, ramped),
# so the listener of a dialogue and every silence keep the photo's own mouth (MuseTalk's never closes).
TALK_PAD = 3


def availability() -> Availability:
    """Unavailable without the neural stack (checked without importing it: `lipsync engines` stays fast);
    a download while any declared file is missing from the hub cache; else ready."""
    from ...models import manager

    absent = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if absent:
        return Availability("unavailable", f"{', '.join(absent)} not installed (see the README's install command)")
    missing = []
    for repo in WEIGHTS:
        state = manager.status(repo)
        for f in state.missing:
            # A pickle another tool left in the cache stands in for its safetensors file (model.load_pipeline).
            stand_in = PICKLE_FALLBACK.get(f.file.path)
            if stand_in and _cached(repo, stand_in, state.revision):
                continue
            missing.append(f)
    if missing:
        size = sum(f.file.size for f in missing)
        return Availability("download", f"{len(missing)} files, {manager.size_text(size)}",
                            missing=tuple(f.name for f in missing), download_bytes=size)
    return Availability("ready")


def _cached(repo, path: str, revision: Optional[str]) -> bool:
    from ...models import hub

    return hub.cached_file(repo.repo_id, path, revision) is not None


def device_and_dtype() -> tuple[str, str]:
    """CUDA in float16 (MuseTalk's own choice); Apple MPS and CPU in float32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "float16"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", "float32"
    return "cpu", "float32"


def load(progress: Optional[Progress] = None, *, allow_download: bool = False):
    """The three models on the best device here (weights already checked by `check_request`)."""
    from .model import load_pipeline

    device, dtype = device_and_dtype()
    return TimedPipeline(load_pipeline(device=device, dtype=dtype, local_files_only=not allow_download), device, dtype)


def frame_cost() -> Optional[FrameCost]:
    """Seconds per frame here: measured by earlier renders, else the benchmark's CPU figure."""
    if availability().state == "unavailable":
        return None
    return speed.frame_cost(*device_and_dtype())


def parse_prompt(prompt: Optional[str]) -> tuple[None, list[str]]:
    """MuseTalk takes no prompt: every word is not understood (SPEC declares no prompt option)."""
    return None, (prompt or "").split()


def renderer(model, plan: RenderPlan) -> "MuseTalkRenderer":
    return MuseTalkRenderer(model, plan)


def ibug68(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) float64 iBUG-layout points from (478, 2) FaceMesh landmarks (see IBUG68)."""
    return np.asarray(landmarks, np.float64)[IBUG68]


def talking_weights(speech: np.ndarray, n_frames: int, pad: int = TALK_PAD) -> np.ndarray:
    """(n_frames,) 0..1: 1 within `pad` frames of voice activity, ramping to 0 over the next `pad`."""
    active = np.zeros(n_frames, bool)
    speech = np.asarray(speech, bool)[:n_frames]
    active[:len(speech)] = speech
    if not active.any():
        return np.zeros(n_frames, np.float32)
    distance = _distance(active)
    return np.clip(1.0 - (distance - pad) / (pad + 1.0), 0.0, 1.0).astype(np.float32)


def _distance(active: np.ndarray) -> np.ndarray:
    """Frames to the nearest active frame (two passes; at least one frame is active)."""
    n, big = len(active), 10**9
    d = np.full(n, big, np.int64)
    last = -big
    for i in range(n):
        last = i if active[i] else last
        d[i] = i - last
    last = big
    for i in range(n - 1, -1, -1):
        last = i if active[i] else last
        d[i] = min(d[i], last - i)
    return d


class _BoxSmoother:
    """One Euro filter over a video's crop boxes, in face heights; restarts after the face was lost."""

    def __init__(self, fps: int):
        self.fps = fps
        self.filter: Optional[OneEuroFilter] = None
        self.scale = 1.0
        self.last_index = -10

    def __call__(self, box: Box, index: int) -> Box:
        if self.filter is None or index != self.last_index + 1:
            self.filter = OneEuroFilter(min_cutoff=BOX_MIN_CUTOFF, beta=BOX_BETA, fps=self.fps)
            self.scale = float(max(box[3] - box[1], 1))
        self.last_index = index
        x1, y1, x2, y2 = np.round(self.filter(np.asarray(box, np.float64) / self.scale) * self.scale).astype(int)
        return int(x1), int(y1), int(x2), int(y2)


class MuseTalkRenderer:
    """Renders a plan's batches in order (SPEC.parallel is False: the box smoothing carries over)."""

    def __init__(self, pipe, plan: RenderPlan):
        from .model import frame_context

        self.pipe, self.plan = pipe, plan
        self.frame_context = frame_context
        self.still = plan.model != kinds.VIDEO.name
        # Whisper states once per speaker, from that speaker's own line (dialogue: each hears only itself);
        # each batch then takes only its frames' windows.
        self.features = [pipe.audio_features(self._audio(sp.audio)) for sp in plan.speakers]
        n = plan.n_frames
        self.weights = [talking_weights(sp.track.speech, n) if self.still else np.ones(n, np.float32)
                        for sp in plan.speakers]
        self.smoothers = [_BoxSmoother(plan.fps) for _ in plan.speakers]
        self._geometry: dict[int, tuple[np.ndarray, Box, FaceMask, np.ndarray]] = {}  # a still's, per speaker

    def _audio(self, line: Optional[np.ndarray]) -> np.ndarray:
        audio = self.plan.audio if line is None else line
        audio = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32)
        if self.plan.sample_rate != SAMPLE_RATE:
            import librosa

            audio = librosa.resample(audio, orig_sr=self.plan.sample_rate, target_sr=SAMPLE_RATE)
        return audio

    def _place(self, k: int, frame: np.ndarray, face, index: int) -> Optional[tuple[Box, FaceMask, np.ndarray]]:
        """(box, mask, crop) of speaker k's face in the frame, or None where there is no usable box."""
        if self.still and k in self._geometry:
            _, box, mask, crop = self._geometry[k]
            return box, mask, crop
        h, w = frame.shape[:2]
        # Points off the frame are clipped to it: MuseTalk would fall back to its detector's box there.
        points = np.clip(ibug68(face.landmarks), 0, [w - 1, h - 1])
        box = crop_box(points, frame.shape)
        if box is None:
            return None
        if not self.still:
            x1, y1, x2, y2 = self.smoothers[k](box, index)
            box = (max(x1, 0), max(y1, 0), min(x2, w), min(y2, h))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                return None
        mask = lower_face_mask(points, box, frame.shape)
        crop = crop_face(frame, box)
        if self.still:
            self._geometry[k] = (points, box, mask, crop)
        return box, mask, crop

    def render_batch(self, batch: FrameBatch) -> list[np.ndarray]:
        out = list(batch.frames)  # a still's frames are shared arrays: each output is a new one
        for k in range(len(self.plan.speakers)):
            todo = []  # (position in batch, frame index, box, mask, crop, weight)
            for i, (frame, faces) in enumerate(zip(batch.frames, batch.faces)):
                face = faces[k] if k < len(faces) else None
                index = batch.start + i
                weight = float(self.weights[k][min(index, len(self.weights[k]) - 1)])
                if face is None or weight <= 0.0:
                    continue
                placed = self._place(k, frame, face, index)
                if placed is not None:
                    todo.append((i, index, *placed, weight))
            if not todo:
                continue
            context = self.frame_context(self.features[k], [t[1] for t in todo], self.plan.fps)
            generated = self.pipe.generate(np.stack([t[4] for t in todo]), context)
            for (i, _, box, mask, _, weight), crop in zip(todo, generated):
                if weight < 1.0:
                    mask = FaceMask(mask.region, mask.alpha * weight)
                out[i] = paste_back(out[i], crop, box, mask)
        if self.plan.mask is not None:
            m = self.plan.mask[..., None]
            out = [(src * (1 - m) + frame * m + 0.5).astype(np.uint8) if frame is not src else frame
                   for src, frame in zip(batch.frames, out)]
        return out

    def render(self, frame: np.ndarray, index: int, faces: list) -> np.ndarray:
        return self.render_batch(FrameBatch(index, [frame], [faces]))[0]
