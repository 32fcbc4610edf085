"""Audio -> per-video-frame mouth track (how open, how wide, lips pressed, speaking or not).

The loudness envelope drives ``open`` (the quality metric correlates mouth opening with it);
English phone timings from pocketsphinx only modulate it, shape the lips and add bilabial
closures, and only where the acoustics agree. Everything else is language independent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from .. import dsp
from ..errors import InputError
from .features import (
    HOP_S,
    FrameFeatures,
    frame_features,
    hop_voice_activity,
    hops_to_frames,
    resample,
    speech_envelope,
    speech_frames,
    to_mono,
)
from .phones import RATE, Phone, align_phones, decode_phones
from .visemes import BILABIALS, REST, viseme_for

log = logging.getLogger(__name__)

_SMOOTH_S = 0.02  # zero-phase smoothing of open / width (Gaussian sigma)
_GATE_S = 0.03  # how softly the mouth closes into / opens out of silence
_BLEND_S = 0.04  # coarticulation: sigma of the dominance-weighted phone shape blend
_OPEN_FLOOR = 0.75  # phone shapes scale the envelope between this and 1, never replace it
_NEAR_CLOSURE = 0.3  # closure on the frames either side of a bilabial closure
_PHONE_WIDTH_WEIGHT = {"aligned": 0.7, "decoded": 0.5}
_BILABIAL_DIP_DB = {"aligned": 6.0, "decoded": 10.0}  # required drop of 1-4 kHz energy


@dataclass
class MouthTrack:
    fps: int
    open: np.ndarray  # (n,) float32 0..1: how far the mouth opens (jaw + lips)
    width: np.ndarray  # (n,) float32 -1..1: rounded <- 0 -> spread
    closure: np.ndarray  # (n,) float32 0..1: lips pressed together (bilabials, silence)
    speech: np.ndarray  # (n,) bool: voice activity
    phones: list[Phone]  # the phone timings used ([] on the acoustic path)
    source: str  # "phones+acoustic" or "acoustic"
    # (n,) float32 0..1: lower lip to upper teeth (F/V); zeros on the acoustic path.
    labiodental: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __post_init__(self) -> None:
        if self.labiodental.size != self.open.size:
            self.labiodental = np.zeros(self.open.size, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.open.size)


def _is_english(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] in ("en", "eng", "english")


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    # Centred Gaussian: zero phase, so no lag between sound and picture.
    if sigma_frames < 0.2 or x.size < 2:
        return x.astype(np.float64)
    return dsp.gaussian_filter1d(x, sigma_frames)


def _acoustic_width(feats: FrameFeatures, voiced: np.ndarray, n_frames: int, fps: int) -> np.ndarray:
    """Spread/rounding proxy: spectral tilt (1.5-3.5 kHz vs 0.25-1 kHz) of voiced hops.

    High F2 (EE) pushes energy up (spread), low F2 (OO, OW) keeps it low (rounded). Measured
    relative to the speaker's own median so voice and microphone colour cancel out.
    """
    # Vowel nuclei only: nasals and voiced consonants have their own tilt that says little
    # about the lips, so interpolate across them.
    nuclei = voiced & (feats.energy_db >= np.median(feats.energy_db[voiced]) - 3.0) if voiced.any() else voiced
    if nuclei.sum() < 3:
        return np.zeros(n_frames)
    tilt = feats.tilt_db.astype(np.float64)
    rel = np.clip((tilt - np.median(tilt[nuclei])) / 8.0, -1.0, 1.0)
    idx = np.flatnonzero(nuclei)
    rel = np.interp(np.arange(tilt.size), idx, rel[idx])
    return 0.7 * hops_to_frames(rel, n_frames, fps)


def _phone_grid(phones: list[Phone], n_hops: int) -> dict[str, np.ndarray]:
    """Viseme parameters per 10 ms hop, blended over neighbours by dominance (coarticulation)."""
    keys = ("open", "width", "labiodental")
    grid = {k: np.full(n_hops, getattr(REST, k), dtype=np.float64) for k in keys}
    dom = np.full(n_hops, REST.dominance)
    for p in phones:
        a, b = int(round(p.start / HOP_S)), int(round(p.end / HOP_S))
        a, b = max(a, 0), min(max(b, a + 1), n_hops)
        if a >= b:
            continue
        v = viseme_for(p.label)
        for k in keys:
            grid[k][a:b] = float(getattr(v, k))
        dom[a:b] = v.dominance
    sigma = _BLEND_S / HOP_S
    den = dsp.gaussian_filter1d(dom, sigma)
    return {k: dsp.gaussian_filter1d(dom * g, sigma) / den for k, g in grid.items()}


def _bilabial_closures(
    phones: list[Phone], feats: FrameFeatures, speech_hops: np.ndarray, n_frames: int, fps: int, mode: str
) -> tuple[np.ndarray, int, int]:
    """Frames where the lips close for P/B/M, plus (accepted, rejected) counts.

    A bilabial label is accepted only if the 1-4 kHz energy (which all but vanishes while the
    lips are shut, even for the M murmur) dips inside the phone relative to its surroundings;
    a bilabial decoded in the middle of a loud steady vowel is a label error. The closure is
    placed on the hops of that dip, not blindly on the label's interval.
    """
    lip = feats.lip_band_db.astype(np.float64)
    n = lip.size
    closure = np.zeros(n_frames)
    ctx = int(round(0.15 / HOP_S))
    accepted = rejected = 0
    for p in phones:
        if p.label not in BILABIALS:
            continue
        a, b = int(np.floor(p.start / HOP_S)), int(np.ceil(p.end / HOP_S))
        a, b = max(a - 1, 0), min(b + 1, n)
        if b <= a or not speech_hops[max(a - ctx, 0) : b + ctx].any():
            continue
        inside = lip[a:b]
        around = lip[max(a - ctx, 0) : min(b + ctx, n)]
        low = float(inside.min())
        if around.max() - low < _BILABIAL_DIP_DB[mode]:
            rejected += 1
            continue
        accepted += 1
        # The closed stretch: hops near the minimum (a held M or a stop's silent closure).
        core = np.flatnonzero(inside <= low + 6.0) + a
        c0, c1 = int(core.min()), int(core.max()) + 1
        # Close the frames at least half covered by that stretch (hop k sits at k * HOP_S);
        # one shorter than a frame closes the frame holding its middle.
        per_frame = 1.0 / (fps * HOP_S)  # hops per video frame
        f0, f1 = int(c0 / per_frame), min(int(np.ceil(c1 / per_frame)), n_frames)
        first = np.ceil(np.arange(f0, f1 + 1) * per_frame - 1e-9)
        covered = np.clip(np.minimum(first[1:], c1) - np.maximum(first[:-1], c0), 0, None)
        hit = np.flatnonzero(covered >= 0.5 * np.diff(first)) + f0
        if hit.size == 0:
            hit = np.array([min(int((c0 + c1) / 2 / per_frame), n_frames - 1)])
        closure[hit[hit < n_frames]] = 1.0
    # A short own kernel so a closure eases in and out without being smoothed away.
    near = np.zeros(n_frames)
    near[1:] = np.maximum(near[1:], closure[:-1])
    near[:-1] = np.maximum(near[:-1], closure[1:])
    return np.maximum(closure, _NEAR_CLOSURE * near), accepted, rejected


def analyze_speech(
    audio: np.ndarray,
    sr: int,
    n_frames: int,
    fps: int = 25,
    *,
    transcript: str | None = None,
    language: str = "en",
    use_phones: bool = True,
    field: str = "audio",
) -> MouthTrack:
    """Mouth track for ``n_frames`` video frames at ``fps`` from ``audio`` (any rate, mono or not).

    Raises ``InputError(field, "no speech found")`` when the voice activity detector finds none.
    """
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    x = to_mono(audio)
    if x.size == 0:
        raise InputError(field, "is empty")
    a16 = resample(x, sr, RATE)

    env = speech_envelope(a16, RATE, n_frames, fps)
    feats = frame_features(a16, RATE)
    speech_hops = hop_voice_activity(feats)
    speech = speech_frames(speech_hops, n_frames, fps, x.size / sr)
    if not speech.any():
        raise InputError(field, "no speech found")

    phones: list[Phone] = []
    mode = ""
    if use_phones and _is_english(language):
        try:
            aligned = align_phones(a16, transcript) if transcript and transcript.strip() else None
            if aligned:
                phones, mode = aligned, "aligned"
            else:
                if transcript and transcript.strip():
                    log.info("transcript could not be aligned; decoding phones instead")
                phones, mode = decode_phones(a16), "decoded"
        except Exception as exc:  # noqa: BLE001 - phones are an optional refinement
            log.warning("phone recognition failed, using acoustics only: %s", exc)
            phones = []

    # Into and out of silence: speech frames keep full weight, silence ramps down over ~2 frames.
    gate = np.maximum(speech, _smooth(speech.astype(np.float64), _GATE_S * fps))
    open_ = _smooth(env, _SMOOTH_S * fps)
    voiced = speech_hops & (feats.periodicity > 0.5)
    width = _acoustic_width(feats, voiced, n_frames, fps)
    labiodental = np.zeros(n_frames)
    closure = np.zeros(n_frames)

    if phones:
        shape = {k: hops_to_frames(v, n_frames, fps) for k, v in _phone_grid(phones, len(feats)).items()}
        open_ = open_ * (_OPEN_FLOOR + (1.0 - _OPEN_FLOOR) * np.clip(shape["open"], 0.0, 1.0))
        w = _PHONE_WIDTH_WEIGHT[mode]
        width = w * shape["width"] + (1.0 - w) * width
        labiodental = np.clip(shape["labiodental"], 0.0, 1.0)
        closure, accepted, rejected = _bilabial_closures(phones, feats, speech_hops, n_frames, fps, mode)
        log.debug("bilabials: %d accepted, %d rejected as label noise", accepted, rejected)

    width = _smooth(width, _SMOOTH_S * fps) * gate
    closure = np.maximum(closure, 1.0 - gate)
    open_ = open_ * gate * (1.0 - closure)
    labiodental = labiodental * gate * (1.0 - closure)

    f32 = lambda a, lo, hi: np.clip(a, lo, hi).astype(np.float32)  # noqa: E731
    return MouthTrack(
        fps=fps,
        open=f32(open_, 0, 1),
        width=f32(width, -1, 1),
        closure=f32(closure, 0, 1),
        speech=speech,
        phones=phones,
        source="phones+acoustic" if phones else "acoustic",
        labiodental=f32(labiodental, 0, 1),
    )
