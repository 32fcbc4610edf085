"""How well a video's mouth follows its speech, measured on the OUTPUT video with the landmark detector
(not from any engine's internals), so every engine is judged the same way.

Per frame: the inner-lip opening and the mouth width of the tracked face (unsmoothed) and the speech
loudness envelope. Scores: the best Pearson r between opening and envelope over small lags, how often the
mouth is closed in pauses and on /p b m/, how narrow the mouth is on rounded vowels against spread ones,
and optionally the PSNR of the region above the nose against the source video (a dub should leave the
upper face untouched).

/p b m/ and vowels come from a reference independent of every engine (see ``reference``): the
transcript's forced alignment, or ground truth passed in (``groundtruth``). Without either, those two
scores are unavailable: decoding phones from the audio would grade the engine with its own decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import config
from ..errors import InputError
from .reference import ReferencePhone

MAX_LAG = 5  # frames searched either way for the best correlation
MIN_SILENCE_S = 0.3  # pauses at least this long are expected to show a closed mouth
SILENCE_EDGE = 2  # frames at each end of a pause left out: the mouth is still closing / already opening
# "Closed": opening (inner-lip gap / face_scale) below CLOSED_ABSOLUTE, or below CLOSED_RELATIVE of the
# video's own 95th-percentile opening when the mouth opens wide (mesh noise on touching lips is ~0.01).
CLOSED_ABSOLUTE = 0.04
CLOSED_RELATIVE = 0.15
NO_TRANSCRIPT = "bilabial score unavailable without a transcript"
ALIGNMENT_FAILED = "bilabial score unavailable: the transcript could not be aligned to the audio"
PSNR_CAP = 100.0  # dB reported for identical regions (keeps the number finite and JSON-able)

# Thresholds of passed().
PASS_R = 0.6
PASS_LAG = 1
PASS_SILENCE = 0.9
PASS_BILABIAL = 0.8
PASS_FACE = 0.9
# Target for rounding (not yet part of passed(): today's engine does not round its lips).
TARGET_ROUNDING = 0.92


@dataclass
class SyncReport:
    r: float  # max Pearson r between mouth opening and speech envelope over lags -MAX_LAG..+MAX_LAG frames
    best_lag: int  # frames; positive = mouth lags audio
    silence_closed: Optional[float]  # fraction of frames inside pauses >= 0.3 s with the mouth closed
    bilabial_closed: Optional[float]  # fraction of /p b m/ phones with the lips closed within ±1 frame
    n_bilabials: int
    face_found: float  # fraction of frames with a face
    upper_face_psnr: Optional[float]  # dB, rows above the nose vs the reference video, if given
    opening: np.ndarray  # per frame, NaN where no face
    envelope: np.ndarray  # per frame, 0..1
    fps: float = 25.0
    closed_threshold: float = CLOSED_ABSOLUTE
    # Mean mouth width on rounded vowels (oo, oh, aw, w) / on spread ones (ee, i, ay): < 1 when the lips round.
    rounding: Optional[float] = None
    n_rounded: int = 0
    n_spread: int = 0
    width: Optional[np.ndarray] = None  # per frame, mouth width / face scale, NaN where no face
    phone_reference: Optional[str] = None  # "transcript" or "ground truth"; None: no reference phones
    note: Optional[str] = None  # why bilabial and rounding scores are missing

    def passed(self) -> bool:
        """r >= 0.6, |best_lag| <= 1 frame, a face in >= 90% of frames, the mouth closed in >= 90% of
        pause frames and on >= 80% of bilabials (each only when measurable)."""
        return (
            self.r >= PASS_R
            and abs(self.best_lag) <= PASS_LAG
            and self.face_found >= PASS_FACE
            and (self.silence_closed is None or self.silence_closed >= PASS_SILENCE)
            and (self.bilabial_closed is None or self.bilabial_closed >= PASS_BILABIAL)
        )

    def to_dict(self) -> dict:
        def rounded(value: Optional[float]) -> Optional[float]:
            return None if value is None else round(float(value), 3)

        return {
            "r": rounded(self.r),
            "best_lag": int(self.best_lag),
            "silence_closed": rounded(self.silence_closed),
            "bilabial_closed": rounded(self.bilabial_closed),
            "n_bilabials": int(self.n_bilabials),
            "face_found": rounded(self.face_found),
            "upper_face_psnr": rounded(self.upper_face_psnr),
            "rounding": rounded(self.rounding),
            "n_rounded": int(self.n_rounded),
            "n_spread": int(self.n_spread),
            "phone_reference": self.phone_reference,
            "note": self.note,
            "n_frames": int(self.opening.size),
            "fps": rounded(self.fps),
            "passed": self.passed(),
        }


def sync_report(
    video: Path,
    audio: Path,
    *,
    transcript: str | None = None,
    phones: Sequence[ReferencePhone] | None = None,
    reference: Path | None = None,
    face_index: int | None = None,
    plot: Path | None = None,
) -> SyncReport:
    """Measure lip sync of ``video`` against ``audio`` (any file with an audio track, e.g. the video itself).

    ``transcript`` gives the /p b m/ and vowel timings by forced alignment; ``phones`` gives them directly
    (ground truth, e.g. ``reference.from_ground_truth``) and wins over the transcript; with neither, the
    bilabial and rounding scores are None and ``note`` says why. ``reference`` is the
    source video of a dub, for the upper-face luma PSNR (read on the output's timeline: resized, at the
    output's frame rate, truncated or played back and forth like the pipeline does); ``face_index`` picks the face (left to right) to
    follow, e.g. the speaker in a dialogue (default: the largest); ``plot`` saves a PNG.
    """
    from ..media.audio import load_audio
    from ..speech import speech_envelope, voice_activity

    frames = _measure_video(Path(video), Path(reference) if reference is not None else None, face_index)
    opening, width, fps = frames.opening, frames.width, frames.fps
    n = opening.size
    found = ~np.isnan(opening)
    if not found.any():
        if face_index is not None:
            raise InputError("face_index", f"no face number {face_index} (counting from 0, left to right) in the video")
        raise InputError("video", "no face found in any frame")

    sr = config.AUDIO_RATE
    speech = load_audio(Path(audio), "audio", sr)
    rate = max(1, round(fps))
    envelope = speech_envelope(speech, sr, n, fps=rate)
    active = voice_activity(speech, sr, n, fps=rate)

    r, lag = best_lagged_correlation(opening, envelope, MAX_LAG)
    threshold = closed_threshold(opening[found])
    closed = found & (np.nan_to_num(opening, nan=np.inf) < threshold)

    pauses = silence_frames(active, fps)
    in_pause = pauses & found
    silence_closed = float(closed[in_pause].mean()) if in_pause.any() else None

    source, note = None, None
    if phones is not None:
        ref, source = list(phones), "ground truth"
    elif transcript:
        from .reference import align_transcript

        ref = align_transcript(speech, transcript)
        source = "transcript" if ref is not None else None
        note = None if ref is not None else ALIGNMENT_FAILED
    else:
        ref, note = None, NO_TRANSCRIPT
    ref = ref or []
    bilabials = [p for p in ref if p.kind == "bilabial"]
    bilabial_hits = [_closed_around(closed, found, p.start, p.end, fps) for p in bilabials]
    bilabial_hits = [hit for hit in bilabial_hits if hit is not None]
    bilabial_closed = float(np.mean(bilabial_hits)) if bilabial_hits else None
    rounded_w = _widths(width, [p for p in ref if p.kind == "rounded"], fps)
    spread_w = _widths(width, [p for p in ref if p.kind == "spread"], fps)
    rounding = float(np.mean(rounded_w) / np.mean(spread_w)) if rounded_w and spread_w else None

    report = SyncReport(
        r=r,
        best_lag=lag,
        silence_closed=silence_closed,
        bilabial_closed=bilabial_closed,
        n_bilabials=len(bilabial_hits),
        face_found=float(found.mean()),
        upper_face_psnr=frames.psnr,
        opening=opening,
        envelope=envelope,
        fps=fps,
        closed_threshold=threshold,
        rounding=rounding,
        n_rounded=len(rounded_w),
        n_spread=len(spread_w),
        width=width,
        phone_reference=source,
        note=note,
    )
    if plot is not None:
        save_plot(report, Path(plot), pauses=pauses, phones=ref, closed=closed)
    return report


# -- measurements ------------------------------------------------------------------------------------


@dataclass
class _VideoMeasures:
    opening: np.ndarray
    width: np.ndarray
    fps: float
    psnr: Optional[float]


def _measure_video(video: Path, reference: Path | None, face_index: int | None) -> _VideoMeasures:
    """Stream the video once: per-frame mouth opening of the tracked face and, against the reference,
    the squared error of the rows above the nose."""
    import av
    import cv2

    from ..face import FaceAnalyzer, FaceTracker, regions

    pick = None
    if face_index is not None:
        pick = lambda faces: faces[face_index] if face_index < len(faces) else None  # noqa: E731

    container = _open_video(video, "video")
    ref_container = _open_video(reference, "reference") if reference is not None else None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        ref_frames = None
        if ref_container is not None:
            # The source on the output's timeline (25 fps, same size; truncated or played back and
            # forth the way the pipeline does), so frame i of each shows the same moment.
            from ..media.video import VideoSource

            n_out = stream.frames or max(1, round(float(container.duration or 0) / 1e6 * fps))
            size = (stream.codec_context.width, stream.codec_context.height)
            ref_source = VideoSource(reference, "reference", size, max(1, round(fps)))
            ref_frames = ref_source.frames(n_out)
        openings: list[float] = []
        widths: list[float] = []
        sq_error, n_pixels = 0.0, 0
        nose_y: float | None = None
        with FaceAnalyzer() as analyzer:
            tracker = FaceTracker(analyzer, pick=pick, smoothing=0.0, fps=fps)
            try:
                for frame in container.decode(stream):
                    rgb = frame.to_ndarray(format="rgb24")
                    face = tracker.update(rgb)
                    if face is None:
                        openings.append(math.nan)
                        widths.append(math.nan)
                    else:
                        openings.append(regions.mouth_opening(face.landmarks))
                        widths.append(regions.mouth_width(face.landmarks))
                        margin = 0.15 * regions.face_scale(face.landmarks)
                        nose_y = float(face.landmarks[regions.NOSE_TIP][1]) - margin
                    ref = next(ref_frames, None) if ref_frames is not None else None
                    if ref is not None and nose_y is not None and nose_y >= 1:
                        if ref.shape != rgb.shape:
                            ref = cv2.resize(ref, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
                        rows = int(nose_y)
                        # Luma, as video codecs are judged: chroma subsampling alone costs RGB PSNR.
                        diff = _luma(rgb[:rows]) - _luma(ref[:rows])
                        sq_error += float(np.square(diff).sum())
                        n_pixels += diff.size
            except av.FFmpegError as exc:
                if not openings:
                    raise InputError("video", "cannot decode the video") from exc
                # A damaged tail: keep the frames that decoded.
    finally:
        container.close()
        if ref_container is not None:
            ref_container.close()
            ref_source.close()
    if not openings:
        raise InputError("video", "has no frames")
    psnr = None
    if reference is not None and n_pixels:
        mse = sq_error / n_pixels
        psnr = PSNR_CAP if mse <= 255.0**2 / 10 ** (PSNR_CAP / 10) else 10 * math.log10(255.0**2 / mse)
    return _VideoMeasures(np.array(openings, np.float64), np.array(widths, np.float64), fps, psnr)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _open_video(path: Path, field: str):
    import av

    if not Path(path).is_file():
        raise InputError(field, f"file not found: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(field, "cannot read this file as video") from exc
    if not container.streams.video:
        container.close()
        raise InputError(field, "has no video track")
    return container


def best_lagged_correlation(opening: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[float, int]:
    """(max r, its lag) of Pearson r between opening[t] and envelope[t - lag]; frames where the opening
    is NaN are left out. Positive lag = the mouth moves after the sound."""
    best_r, best_lag = -1.0, 0
    n = min(opening.size, envelope.size)
    # Try small lags first so ties go to the smallest shift.
    for lag in sorted(range(-max_lag, max_lag + 1), key=abs):
        if lag >= 0:
            a, b = opening[lag:n], envelope[: n - lag]
        else:
            a, b = opening[: n + lag], envelope[-lag:n]
        ok = ~np.isnan(a)
        r = _pearson(a[ok], b[ok])
        if r > best_r:
            best_r, best_lag = r, lag
    return best_r, best_lag


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def closed_threshold(opening: np.ndarray) -> float:
    """Opening below which the mouth counts as closed, for this video (see CLOSED_*)."""
    if opening.size == 0:
        return CLOSED_ABSOLUTE
    return max(CLOSED_ABSOLUTE, CLOSED_RELATIVE * float(np.percentile(opening, 95)))


def silence_frames(active: np.ndarray, fps: float) -> np.ndarray:
    """Frames inside pauses of at least MIN_SILENCE_S, without SILENCE_EDGE frames at each inner end
    (a pause at the very start or end of the video keeps that edge)."""
    out = np.zeros(active.size, bool)
    min_len = math.ceil(MIN_SILENCE_S * fps - 1e-9)
    n = active.size
    i = 0
    while i < n:
        if active[i]:
            i += 1
            continue
        j = i
        while j < n and not active[j]:
            j += 1
        if j - i >= min_len:
            start = i if i == 0 else i + SILENCE_EDGE
            end = j if j == n else j - SILENCE_EDGE
            out[start:max(start, end)] = True
        i = j
    return out


def _widths(width: np.ndarray, phones: list, fps: float) -> list[float]:
    """Per phone, the mean mouth width over the frames whose middle lies inside it (else the frame at
    its middle); phones without a face are left out."""
    out = []
    for p in phones:
        first, last = math.ceil(p.start * fps - 0.5), math.floor(p.end * fps - 0.5)
        if last < first:
            first = last = int(math.floor((p.start + p.end) / 2 * fps))
        values = width[max(0, first) : min(width.size, last + 1)]
        values = values[~np.isnan(values)]
        if values.size:
            out.append(float(values.mean()))
    return out


def _closed_around(closed: np.ndarray, found: np.ndarray, start: float, end: float, fps: float) -> Optional[bool]:
    """Whether the lips close within [start - 1 frame, end + 1 frame]; None without a face there."""
    first = max(0, int(math.floor(start * fps)) - 1)
    last = min(closed.size - 1, int(math.ceil(end * fps)) + 1)  # frame covering `end`, plus one
    if first > last or not found[first : last + 1].any():
        return None
    return bool(closed[first : last + 1].any())


# -- plot --------------------------------------------------------------------------------------------


def save_plot(report: SyncReport, path: Path, *, pauses: np.ndarray, phones: list, closed: np.ndarray) -> Path:
    """Top: mouth opening (scaled to the envelope's 0..1) over the speech envelope, pauses shaded,
    bilabials ticked (green: lips closed, red: not). Bottom: mouth width, rounded vowels shaded purple
    and spread ones yellow. The scores in the titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fps = report.fps
    t = np.arange(report.opening.size) / fps
    top = np.nanpercentile(report.opening, 95) if np.isfinite(report.opening).any() else 1.0
    scaled = np.clip(report.opening / max(top, 1e-6), 0, 1.2)

    fig = Figure(figsize=(12, 5.6), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_w = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    ax.fill_between(t, 0, report.envelope, step="post", color="tab:blue", alpha=0.3, label="speech envelope")
    # The envelope is a step per frame [i/fps, (i+1)/fps); the opening is a point at each frame's middle.
    ax.plot(t + 0.5 / fps, scaled, color="tab:orange", lw=1.5, label="mouth opening (scaled)")
    ax.axhline(report.closed_threshold / max(top, 1e-6), color="tab:orange", lw=0.7, ls=":", label="closed below")
    for start, end in _runs(pauses):
        ax.axvspan(start / fps, end / fps, color="0.85", zorder=0)
    for phone in phones:
        if phone.kind == "bilabial":
            hit = _closed_around(closed, ~np.isnan(report.opening), phone.start, phone.end, fps)
            color = "0.5" if hit is None else ("tab:green" if hit else "tab:red")
            ax.plot([phone.start, phone.start], [1.05, 1.15], color=color, lw=2)
            ax.text(phone.start, 1.17, phone.label, fontsize=7, color=color, ha="center")
        elif phone.kind in ("rounded", "spread"):
            color = "tab:purple" if phone.kind == "rounded" else "gold"
            ax_w.axvspan(phone.start, phone.end, color=color, alpha=0.3, lw=0)
    d = report.to_dict()
    bilabial = (f"bilabial_closed={d['bilabial_closed']} (n={d['n_bilabials']}, {d['phone_reference']})"
                if d["phone_reference"] else (d["note"] or ""))
    ax.set_title(
        f"r={d['r']} lag={d['best_lag']} silence_closed={d['silence_closed']} {bilabial} "
        f"face={d['face_found']} psnr={d['upper_face_psnr']} -> {'PASS' if d['passed'] else 'FAIL'}",
        fontsize=9,
    )
    ax.set_ylim(0, 1.3)
    ax.set_xlim(0, max(t[-1] + 1 / fps, 1 / fps))
    ax.legend(loc="upper right", fontsize=7)
    if report.width is not None:
        ax_w.plot(t + 0.5 / fps, report.width, color="tab:brown", lw=1.2, label="mouth width / face scale")
        ax_w.legend(loc="upper right", fontsize=7)
    rounding = (f"rounding (width rounded / spread) = {d['rounding']} "
                f"(n={d['n_rounded']} rounded, {d['n_spread']} spread; target <= {TARGET_ROUNDING})"
                if d["rounding"] is not None else "rounding unavailable without reference phones")
    ax_w.set_title(rounding, fontsize=9)
    ax_w.set_xlim(ax.get_xlim())
    ax_w.set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))
