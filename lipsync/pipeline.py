"""The recipe: request → media in → analysis → engine → media out.

`render()` reads top to bottom as the job, one call per step: check the request against the engine,
load the media (fetch, probe, lay out the audio), analyse it (each speaker's mouth track, the faces of a
still), plan the render, stream source frames to the engine in batches, encode. What differs between a
video dub, a talking image and a dialogue is picked once, from `KINDS`. The job record around it (ids,
timings, errors) is `lipsync.jobs`' business.
"""

from __future__ import annotations

import itertools
import queue
from collections import deque
from concurrent.futures import ThreadPoolExecutor
import secrets
import threading
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

from . import config, kinds
from .engines import check_request, get_engine
from .engines.base import FrameBatch, Progress, RenderPlan, Speaker
from .errors import Cancelled, InputError
from .requests import ImageRequest, Request, VideoRequest

# Analysis works on 16 kHz mono. The output audio is built by ffmpeg from the source files (AudioMix),
# so a long job never holds full-rate audio in memory.
AUDIO_RATE = config.AUDIO_RATE
LOUDNESS_TARGET = -16.0  # LUFS
MAX_GAIN_DB = 30.0
# x264 quality: at 16 the untouched face region stays ≥ 40 dB (luma PSNR) from the input through encoding.
CRF = 16
# Batches a parallel engine renders ahead of the encoder (two threads), as frames of a still.
RENDER_AHEAD = 4
CancelCheck = Callable[[], bool]


@dataclass
class RenderResult:
    duration: float  # seconds of output
    n_frames: int
    seed: int
    engine: str
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("decode", "analysis", "render", "encode"), 0.0))
    warnings: list[str] = field(default_factory=list)
    ignored_prompt_words: list[str] = field(default_factory=list)
    faces_found: int = 0  # frames with a face (video) or faces used (stills)
    audio_seconds: float = 0.0  # the speech's length (what the hosted API bills), even when the output is cut
    compare: Optional[Path] = None  # the before/after MP4, when asked


class _Clock:
    """Accumulates seconds per stage."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - t0


@dataclass
class _Job:
    """What one render carries from step to step."""

    request: Request
    kind: "_Kind"
    work: Path  # the job's temp folder
    clock: _Clock
    stack: ExitStack  # closes the job's workers and files, last opened first


@dataclass
class Media:
    """Step 2's result: the visual input and the audio, both on the output timeline."""

    visual: Path
    size: tuple[int, int]  # output (w, h)
    scale: float  # output pixels per input pixel
    mix: np.ndarray  # all speech, 16 kHz mono
    voices: list[tuple[str, np.ndarray, Optional[str]]]  # (field, that speaker's line, transcript)
    audio_out: object  # media.writer.AudioMix: what ffmpeg writes as the output's audio
    mask: Optional[np.ndarray]
    audio_seconds: float = 0.0  # the speech's own length, before a length mode cut it

    @property
    def duration(self) -> float:
        return len(self.mix) / AUDIO_RATE

    @property
    def n_frames(self) -> int:
        return max(1, round(self.duration * config.FPS))


@dataclass
class Analysis:
    """Step 3's result."""

    speakers: list[Speaker]
    analyzer: object  # face.FaceAnalyzer, open for the job (video frames are tracked as they stream)
    still: Optional[np.ndarray] = None  # the resized image of an image or dialogue job
    faces_found: int = 0


def render(request: Request, out_path: Path, *, progress: Optional[Progress] = None,
           cancel: Optional[CancelCheck] = None, allow_download: bool = False) -> RenderResult:
    """Render `request` into `out_path` (an MP4 that appears only when complete). With `allow_download`,
    an engine whose weights are missing downloads them first (progress stage "download")."""
    report = progress or (lambda fraction, stage: None)
    engine = get_engine(request.engine)
    # 1. Inputs: the request against what the engine declares, and whether it can run here.
    check_request(engine, request, allow_download=allow_download, progress=progress)
    style, unknown_words = engine.parse_prompt(request.prompt)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    result = RenderResult(duration=0.0, n_frames=0, seed=seed, engine=engine.SPEC.name, ignored_prompt_words=unknown_words)
    if unknown_words:
        result.warnings.append(f"prompt: not understood by {engine.SPEC.name}: {', '.join(unknown_words)}")

    with tempfile.TemporaryDirectory(prefix="lipsync-job-", dir=config.cache_dir()) as tmp, ExitStack() as stack:
        job = _Job(request, KINDS[request.model], Path(tmp), _Clock(result.timings), stack)
        # 2. Media in: local paths or URLs → probed local files; audio laid out on the output timeline.
        report(0.0, "decode")
        with job.clock("decode"):
            media = load_media(job)
        result.n_frames, result.duration, result.audio_seconds = media.n_frames, media.duration, media.audio_seconds
        # 3. Analysis: each speaker's own line drives its mouth; the faces of a still are found once.
        report(0.02, "analysis")
        with job.clock("analysis"):
            analysis = analyse(job, media)
        result.faces_found = analysis.faces_found
        # 4. Plan: what the engine is told about the job; the engine loaded and its renderer made for it.
        report(0.1, "render")
        with job.clock("render"):
            plan = make_plan(job, media, analysis, seed, style)
            renderer = engine.renderer(engine.load(progress, allow_download=allow_download), plan)
        # 5. Frames: source frames and faces, in the engine's batches, rendered (ahead, if it may).
        batches = frame_batches(job, media, analysis, engine.SPEC.batch_size)
        rendered = render_batches(job, batches, renderer, parallel=engine.SPEC.parallel and job.kind.independent_frames)
        # 6. Media out: encode batch by batch; cancel and progress per batch.
        encode(job, rendered, out_path, media, result, report, cancel)
        # 7. Before/after: the source beside the output, on the same timeline (when asked).
        if getattr(request, "compare", False):
            with job.clock("encode"):
                result.compare = write_compare(media.visual, out_path, media.size, media.n_frames, request.length_mode)
    report(1.0, "encode")
    return result


# -- 2. media --------------------------------------------------------------------------------------------


def load_media(job: _Job) -> Media:
    from .media.fetch import resolve
    from .media.probe import expect_kind, probe
    from .media.video import output_size, read_image
    from .media.writer import AudioMix

    request, name = job.request, job.kind.visual_field
    visual = resolve(getattr(request, name), name, job.work)
    info = probe(visual, name)
    expect_kind(info, name, (name,))
    mix, voices, tracks_out, loudness = job.kind.audio(request, job.work)
    audio_seconds = len(mix) / AUDIO_RATE
    if getattr(request, "length_mode", None) == "cut_audio":
        mix, voices = _cut_to_video(visual, mix, voices)
    size = output_size(info.width, info.height, request.resolution)
    mask = _load_mask(resolve(request.mask_image, "mask_image", job.work), size, read_image) if request.mask_image else None
    gain = float(np.clip(LOUDNESS_TARGET - loudness, -MAX_GAIN_DB, MAX_GAIN_DB)) if np.isfinite(loudness) else 0.0
    audio_out = AudioMix(tracks_out, duration=len(mix) / AUDIO_RATE, gain_db=gain, **_background(request, info, visual))
    return Media(visual, size, size[0] / info.width, mix, voices, audio_out, mask, audio_seconds)


def _cut_to_video(visual: Path, mix: np.ndarray, voices: list):
    """cut_audio: the speech stops at the video's end (its frames counted as VideoSource streams them)."""
    from .media.video import VideoSource

    with VideoSource(visual, "video", (2, 2), config.FPS) as source:
        keep = min(len(mix), round(source.num_frames * AUDIO_RATE / config.FPS))
    return mix[:keep], [(name, line[:keep], text) for name, line, text in voices]


def _background(request, info, visual: Path) -> dict:
    """keep_background: the video's own sound under the speech (looped with the picture in loop mode)."""
    level = getattr(request, "keep_background", None)
    if level is None:
        return {}
    if not info.has_audio:
        raise InputError("keep_background", "the video has no audio track to keep")
    from .media.writer import AudioTrack

    return {"background": AudioTrack(visual, loop=request.length_mode == "loop"), "background_db": float(level)}


def _one_voice(request, work: Path):
    """(mix, voices, output tracks, loudness) of a job with one audio input."""
    from .media.audio import integrated_loudness
    from .media.fetch import resolve
    from .media.writer import AudioTrack

    path = resolve(request.audio, "audio", work)
    mix = _load_speech(path, "audio")
    return mix, [("audio", mix, request.transcript)], (AudioTrack(path),), integrated_loudness(mix, AUDIO_RATE)


def _two_voices(request, work: Path):
    """The same for a dialogue: each speaker's line placed on the timeline by `order`."""
    from .media.audio import arrange_dialogue, integrated_loudness
    from .media.fetch import resolve
    from .media.writer import AudioTrack

    left_path, right_path = (resolve(getattr(request, f), f, work) for f in ("left_audio", "right_audio"))
    left, right = _load_speech(left_path, "left_audio"), _load_speech(right_path, "right_audio")
    mix, left_line, right_line = arrange_dialogue(left, right, request.order)
    voices = [("left_audio", left_line, request.left_transcript), ("right_audio", right_line, request.right_transcript)]
    first, second = len(left) / AUDIO_RATE, len(right) / AUDIO_RATE
    starts = {"meanwhile": (0.0, 0.0), "left_right": (0.0, first), "right_left": (second, 0.0)}[request.order]
    tracks_out = (AudioTrack(left_path, starts[0]), AudioTrack(right_path, starts[1]))
    return mix, voices, tracks_out, integrated_loudness(left_line + right_line, AUDIO_RATE)  # as ffmpeg will sum them


# -- 3. analysis -----------------------------------------------------------------------------------------


def analyse(job: _Job, media: Media) -> Analysis:
    from .face import FaceAnalyzer
    from .speech import analyze_speech

    tracks = [analyze_speech(line, AUDIO_RATE, media.n_frames, config.FPS, transcript=text, field=name)
              for name, line, text in media.voices]
    analyzer = job.stack.enter_context(FaceAnalyzer())
    return job.kind.analyse(job.request, media, tracks, analyzer)


# -- 4. plan ---------------------------------------------------------------------------------------------


def make_plan(job: _Job, media: Media, analysis: Analysis, seed: int, style: object) -> RenderPlan:
    return RenderPlan(model=job.request.model, size=media.size, fps=config.FPS, n_frames=media.n_frames,
                      speakers=analysis.speakers, seed=seed, style=style, mask=media.mask, audio=media.mix,
                      sample_rate=AUDIO_RATE)


# -- 5. frames -------------------------------------------------------------------------------------------


def frame_batches(job: _Job, media: Media, analysis: Analysis, size: int) -> Iterator[FrameBatch]:
    """The job's source frames with each speaker's face, `size` at a time (the last batch may be short)."""
    frames = job.kind.frames(job, media, analysis)
    for start in itertools.count(0, size):
        chunk = list(itertools.islice(frames, size))
        if not chunk:
            return
        yield FrameBatch(start, [frame for frame, _ in chunk], [faces for _, faces in chunk])


def render_batches(job: _Job, batches: Iterator[FrameBatch], renderer, *, parallel: bool) -> Iterator:
    """(batch, output frames) in order. A parallel engine renders on two threads (numpy and OpenCV
    release the GIL), up to RENDER_AHEAD batches early; memory stays a few batches either way."""
    if not parallel:
        for batch in batches:
            with job.clock("render"):
                out = renderer.render_batch(batch)
            yield batch, out
        return
    pool = job.stack.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="lipsync-render"))
    pending: deque = deque()
    for batch in itertools.chain(batches, [None]):
        if batch is not None:
            pending.append((batch, pool.submit(renderer.render_batch, batch)))
        while pending and (len(pending) > RENDER_AHEAD or batch is None):
            done, future = pending.popleft()
            with job.clock("render"):  # the wait for a batch is this stage's time
                out = future.result()
            yield done, out


# -- 6. encode -------------------------------------------------------------------------------------------


def encode(job: _Job, rendered: Iterator, out_path: Path, media: Media, result: RenderResult,
           report: Progress, cancel: Optional[CancelCheck]) -> None:
    from .media.writer import VideoWriter

    seen = 0  # frames where a speaker's face was visible
    with VideoWriter(out_path, media.size, media.audio_out, fps=config.FPS, crf=CRF) as writer:
        for batch, frames in rendered:
            if cancel is not None and cancel():
                raise Cancelled()
            with job.clock("encode"):
                for frame in frames:
                    writer.write(frame)
            seen += sum(any(face is not None for face in faces) for faces in batch.faces)
            report(0.1 + 0.88 * (batch.start + len(batch)) / media.n_frames, "render")
        job.kind.check_faces(result, seen)  # before the file appears
        report(0.98, "encode")
        with job.clock("encode"):
            writer.close()


def write_compare(source: Path, out_path: Path, size: tuple[int, int], n_frames: int, length_mode: str) -> Path:
    """<output>.compare.mp4 beside the output: the source (on the output's timeline) left, the dub right."""
    from .media.compare import side_by_side

    target = out_path.with_name(f"{out_path.stem}.compare.mp4")
    side_by_side(source, out_path, target, size=size, fps=config.FPS, n_frames=n_frames, length_mode=length_mode)
    return target


# -- per kind --------------------------------------------------------------------------------------------


class _Video:
    """A dub: frames stream from the video and the speaker's face is tracked in each."""

    visual_field = "video"
    independent_frames = False  # the tracker and the renderer carry state from frame to frame

    def __init__(self, audio):
        self.audio = audio

    def analyse(self, request, media: Media, tracks: list, analyzer) -> Analysis:
        [(_, line, _)] = media.voices
        return Analysis([Speaker(tracks[0], role="speaker", audio=line)], analyzer)

    def frames(self, job: _Job, media: Media, analysis: Analysis) -> Iterator:
        from .media.video import VideoSource

        source = job.stack.enter_context(VideoSource(media.visual, "video", media.size, config.FPS))
        tracker = _face_tracker(job.request, analysis.analyzer, media.mask)
        # Decoding and tracking each get a worker thread (entered after the source, so they stop
        # before it closes); rendering stays on this one and encoding runs in ffmpeg.
        decoded = job.stack.enter_context(_Prefetch(_decoded(source, media.n_frames, job.request.length_mode, job.clock)))
        return job.stack.enter_context(_Prefetch(_tracked(decoded, tracker, job.clock)))

    def check_faces(self, result: RenderResult, seen: int) -> None:
        result.faces_found = seen
        if seen == 0:
            raise InputError("video", "no face found in any frame")
        if seen < result.n_frames:
            result.warnings.append(f"video: no face in {result.n_frames - seen} of {result.n_frames} frames; "
                                   "those frames pass through unchanged")


class _Still:
    """An image or a dialogue: one picture, its speaking faces found once; frame i depends only on i."""

    visual_field = "image"
    independent_frames = True

    def __init__(self, audio):
        self.audio = audio

    def analyse(self, request, media: Media, tracks: list, analyzer) -> Analysis:
        from .media.video import read_image

        still = cv2.resize(read_image(media.visual, "image"), media.size, interpolation=cv2.INTER_AREA)
        chosen = _pick_still_faces(request, analyzer.detect(still), media.mask, scale=media.scale)
        roles = ("left", "right") if len(chosen) == 2 else ("speaker",)
        speakers = [Speaker(track, face, role, audio=line)
                    for track, face, role, (_, line, _) in zip(tracks, chosen, roles, media.voices)]
        return Analysis(speakers, analyzer, still=still, faces_found=len(chosen))

    def frames(self, job: _Job, media: Media, analysis: Analysis) -> Iterator:
        faces = [sp.face for sp in analysis.speakers]
        return ((analysis.still, faces) for _ in range(media.n_frames))

    def check_faces(self, result: RenderResult, seen: int) -> None:
        """The faces were checked when they were picked."""


_Kind = _Video | _Still
# The one place a job's kind picks its behaviour: where frames come from, and how its audio is laid out.
KINDS: dict[str, _Kind] = {
    kinds.VIDEO.name: _Video(_one_voice),
    kinds.IMAGE.name: _Still(_one_voice),
    kinds.DIALOGUE.name: _Still(_two_voices),
}


# -- helpers ---------------------------------------------------------------------------------------------


def _load_speech(path: Path, field: str) -> np.ndarray:
    from .media.audio import load_audio
    from .media.probe import expect_kind, probe

    info = probe(path, field)
    expect_kind(info, field, ("audio", "video"))
    audio = load_audio(path, field, AUDIO_RATE)
    if len(audio) < AUDIO_RATE // 25:
        raise InputError(field, "audio is too short (under one video frame)")
    return audio


def _load_mask(path: Path, size: tuple[int, int], read_image) -> np.ndarray:
    """White = may change. Resized to the output and feathered so the edit has no hard seam."""
    gray = cv2.cvtColor(read_image(path, "mask_image"), cv2.COLOR_RGB2GRAY)
    mask = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, min(size) / 200))
    if mask.max() < 0.05:
        raise InputError("mask_image", "mask is all black: nothing may change")
    return mask


def _mask_cover(face, mask: np.ndarray) -> float:
    x0, y0, x1, y1 = np.round(face.box).astype(int)
    region = mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    return float(region.mean()) if region.size else 0.0


def _chosen_face(faces: list, choice, field: str, scale: float, default: int) -> int:
    """Index of the face a user chose by index or by a box in the input image's pixels."""
    if choice is None:
        return default
    if isinstance(choice, int):
        if choice >= len(faces):
            raise InputError(field, f"image has {len(faces)} faces; index {choice} does not exist")
        return choice
    from .face.landmarks import box_iou

    box = np.asarray(choice, np.float32) * scale
    overlaps = [box_iou(face.box, box) for face in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] <= 0:
        raise InputError(field, "no detected face overlaps that box")
    return best


def _pick_still_faces(request, faces: list, mask: Optional[np.ndarray], scale: float = 1.0) -> list:
    """The speaking face(s) of a still. `scale` maps input-image pixels to the resized still."""
    n = len(faces)
    if isinstance(request, ImageRequest):
        if n == 0:
            raise InputError("image", "no face found")
        if request.face_index is not None:
            if request.face_index >= n:
                raise InputError("face_index", f"image has {n} face(s); index {request.face_index} does not exist")
            return [faces[request.face_index]]
        if mask is not None:
            return [max(faces, key=lambda f: _mask_cover(f, mask))]
        return [max(faces, key=lambda f: f.size)]
    # Dialogue: faces are sorted left to right.
    if n < 2:
        raise InputError("image", f"found {n} face{'s' if n != 1 else ''}, dialogue needs 2")
    if request.left_face is not None or request.right_face is not None:
        left = _chosen_face(faces, request.left_face, "left_face", scale, default=0)
        right = _chosen_face(faces, request.right_face, "right_face", scale, default=n - 1)
        if left == right:
            raise InputError("right_face", "left and right must be different faces")
        return [faces[left], faces[right]]
    if mask is not None:
        ranked = sorted(faces, key=lambda f: _mask_cover(f, mask), reverse=True)[:2]
    else:
        ranked = sorted(faces, key=lambda f: f.size, reverse=True)[:2]
    return sorted(ranked, key=lambda f: f.centre[0])


def _face_tracker(request: VideoRequest, analyzer, mask):
    from .face import FaceTracker

    pick = None
    if request.face_index is not None:
        index = request.face_index
        pick = lambda faces: faces[index] if index < len(faces) else None  # noqa: E731
    elif mask is not None:
        pick = lambda faces: max(faces, key=lambda f: _mask_cover(f, mask)) if faces else None  # noqa: E731
    return FaceTracker(analyzer, pick=pick, fps=config.FPS)


def _decoded(source, n_frames: int, length_mode: str, clock) -> Iterator:
    """Frames on the output timeline: truncated, or extended per the length mode."""
    frames = source.frames(n_frames, length_mode)
    while True:
        with clock("decode"):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


def _tracked(frames: Iterator, tracker, clock) -> Iterator:
    """(frame, [face]) with the dubbed face tracked."""
    for frame in frames:
        with clock("analysis"):
            face = tracker.update(frame)
        yield frame, [face]


class _Prefetch:
    """Run an iterator in a worker thread, a few items ahead, as a context manager.

    Decoding (PyAV) and face tracking (mediapipe) release the GIL for much of their work, so on a second
    core they overlap rendering and encoding. Memory stays bounded by `depth` frames.
    """

    _DONE = object()

    def __init__(self, items: Iterator, depth: int = 6):
        self.items, self.queue, self.stop = items, queue.Queue(maxsize=depth), threading.Event()
        self.thread = threading.Thread(target=self._work, name="lipsync-prefetch", daemon=True)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self.items:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Failure(exc))
        finally:
            # Close the source generator here, on its own thread, before its files go away.
            getattr(self.items, "close", lambda: None)()

    def __enter__(self) -> Iterator:
        self.thread.start()
        return self._consume()

    def _consume(self) -> Iterator:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class _Failure:
    exc: BaseException
