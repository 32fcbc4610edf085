"""The recipe: request → media in → analysis → engine → media out.

`render()` reads top to bottom as the job: fetch and probe the inputs, lay out the audio, turn each
speaker's audio into a mouth track, find the faces, then stream frames source → engine → encoder.
The job record around it (ids, timings, errors) is `lipsync.jobs`' business.
"""

from __future__ import annotations

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

from . import config
from .engines import get_engine
from .engines.base import Progress, RenderPlan, Speaker
from .errors import Cancelled, EngineError, InputError
from .requests import ImageRequest, MultiRequest, Request, VideoRequest

# Analysis works on 16 kHz mono. The output audio is built by ffmpeg from the source files (AudioMix),
# so a long job never holds full-rate audio in memory.
AUDIO_RATE = config.AUDIO_RATE
LOUDNESS_TARGET = -16.0  # LUFS
MAX_GAIN_DB = 30.0
# x264 quality: at 16 the untouched face region stays ≥ 40 dB (luma PSNR) from the input through encoding.
CRF = 16
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


def render(request: Request, out_path: Path, *, progress: Optional[Progress] = None,
           cancel: Optional[CancelCheck] = None) -> RenderResult:
    """Render `request` into `out_path` (an MP4 that appears only when complete)."""
    from .face import FaceAnalyzer
    from .media.audio import arrange_dialogue, integrated_loudness, load_audio
    from .media.fetch import resolve
    from .media.probe import expect_kind, probe
    from .media.video import output_size, read_image
    from .media.writer import AudioMix, AudioTrack, VideoWriter
    from .speech import analyze_speech

    report = progress or (lambda fraction, stage: None)
    engine = get_engine(request.engine)
    _check_engine(engine, request)
    style, unknown_words = engine.parse_prompt(request.prompt)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    result = RenderResult(duration=0.0, n_frames=0, seed=seed, engine=engine.SPEC.name, ignored_prompt_words=unknown_words)
    if unknown_words:
        result.warnings.append(f"prompt: not understood by {engine.SPEC.name}: {', '.join(unknown_words)}")
    clock = _Clock(result.timings)

    with tempfile.TemporaryDirectory(prefix="lipsync-job-", dir=config.cache_dir()) as tmp, ExitStack() as stack:
        work = Path(tmp)
        # 1. Media in: local paths or URLs → probed local files; audio laid out on the output timeline.
        report(0.0, "decode")
        with clock("decode"):
            visual_field = "video" if isinstance(request, VideoRequest) else "image"
            visual = resolve(getattr(request, visual_field), visual_field, work)
            visual_info = probe(visual, visual_field)
            expect_kind(visual_info, visual_field, ("video",) if visual_field == "video" else ("image",))
            if isinstance(request, MultiRequest):
                left_path, right_path = (resolve(getattr(request, f), f, work) for f in ("left_audio", "right_audio"))
                left = _load_speech(left_path, "left_audio", load_audio, probe, expect_kind)
                right = _load_speech(right_path, "right_audio", load_audio, probe, expect_kind)
                mix, left_line, right_line = arrange_dialogue(left, right, request.order)
                voices = [("left_audio", left_line, request.left_transcript), ("right_audio", right_line, request.right_transcript)]
                first, second = len(left) / AUDIO_RATE, len(right) / AUDIO_RATE
                starts = {"meanwhile": (0.0, 0.0), "left_right": (0.0, first), "right_left": (second, 0.0)}[request.order]
                tracks_out = (AudioTrack(left_path, starts[0]), AudioTrack(right_path, starts[1]))
                loudness = integrated_loudness(left_line + right_line, AUDIO_RATE)  # as ffmpeg will sum them
                del left, right
            else:
                audio_path = resolve(request.audio, "audio", work)
                mix = _load_speech(audio_path, "audio", load_audio, probe, expect_kind)
                voices = [("audio", mix, request.transcript)]
                tracks_out = (AudioTrack(audio_path),)
                loudness = integrated_loudness(mix, AUDIO_RATE)
            size = output_size(visual_info.width, visual_info.height, request.resolution)
            mask = _load_mask(resolve(request.mask_image, "mask_image", work), size, read_image) if request.mask_image else None
        n_frames = max(1, round(len(mix) / AUDIO_RATE * config.FPS))
        result.n_frames, result.duration = n_frames, len(mix) / AUDIO_RATE

        # 2. Analysis: each speaker's own track drives its mouth; find the faces in stills.
        report(0.02, "analysis")
        with clock("analysis"):
            tracks = [analyze_speech(line, AUDIO_RATE, n_frames, config.FPS, transcript=text, field=name)
                      for name, line, text in voices]
            analyzer = stack.enter_context(FaceAnalyzer())
            still = None
            if isinstance(request, VideoRequest):
                speakers = [Speaker(tracks[0], role="speaker")]
            else:
                still = cv2.resize(read_image(visual, "image"), size, interpolation=cv2.INTER_AREA)
                faces = analyzer.detect(still)
                chosen = _pick_still_faces(request, faces, mask, scale=size[0] / visual_info.width)
                speakers = [Speaker(track, face, role) for track, face, role in
                            zip(tracks, chosen, ("left", "right") if len(chosen) == 2 else ("speaker",))]
                result.faces_found = len(chosen)
        gain = float(np.clip(LOUDNESS_TARGET - loudness, -MAX_GAIN_DB, MAX_GAIN_DB)) if np.isfinite(loudness) else 0.0
        audio_out = AudioMix(tracks_out, duration=len(mix) / AUDIO_RATE, gain_db=gain)

        # 3. Engine + media out, streamed frame by frame.
        report(0.1, "render")
        with clock("render"):
            model = engine.load(progress)
            plan = RenderPlan(model=request.model, size=size, fps=config.FPS, n_frames=n_frames, speakers=speakers,
                              seed=seed, style=style, mask=mask, audio=mix, sample_rate=AUDIO_RATE)
            renderer = engine.renderer(model, plan)
        if still is None:
            from .media.video import VideoSource

            source = stack.enter_context(VideoSource(visual, "video", size, config.FPS))
            tracker = _face_tracker(request, analyzer, mask)
            # Decoding and tracking each get a worker thread (entered after the source, so they stop
            # before it closes); rendering stays here and encoding runs in ffmpeg.
            decoded = stack.enter_context(_Prefetch(_decoded(source, n_frames, clock)))
            frames = stack.enter_context(_Prefetch(_tracked(decoded, tracker, clock)))
        else:
            # A still's frames depend only on their index: render two at a time (numpy and OpenCV
            # release the GIL), a few frames ahead, in order.
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="lipsync-render"))
            faces = [sp.face for sp in speakers]
            frames = _rendered_ahead(pool, renderer, still, faces, n_frames, clock)
        with VideoWriter(out_path, size, audio_out, fps=config.FPS, crf=CRF) as writer:
            for index, (frame, faces) in enumerate(frames):
                if cancel is not None and cancel():
                    raise Cancelled()
                with clock("render"):
                    out = renderer.render(frame, index, faces) if still is None else frame
                with clock("encode"):
                    writer.write(out)
                if isinstance(request, VideoRequest) and faces[0] is not None:
                    result.faces_found += 1
                if index % 5 == 0:
                    report(0.1 + 0.88 * (index + 1) / n_frames, "render")
            if isinstance(request, VideoRequest) and result.faces_found == 0:
                raise InputError("video", "no face found in any frame")
            report(0.98, "encode")
            with clock("encode"):
                writer.close()
        if isinstance(request, VideoRequest) and result.faces_found < n_frames:
            result.warnings.append(f"video: no face in {n_frames - result.faces_found} of {n_frames} frames; "
                                   "those frames pass through unchanged")
    report(1.0, "encode")
    return result


def _check_engine(engine, request: Request) -> None:
    spec = engine.SPEC
    if request.model not in spec.modes:
        raise EngineError(f"engine: {spec.name} cannot render {request.model}")
    if request.resolution not in spec.resolutions:
        raise InputError("resolution", f"{spec.name} supports {', '.join(spec.resolutions)}")
    available = engine.availability()
    if not available.ok:
        raise EngineError(f"engine: {spec.name} is not available: {available.reason}")
    for option in ("prompt", "seed", "mask_image"):
        if getattr(request, option) is not None and not spec.supports(option):
            raise InputError(option, f"not supported by the {spec.name} engine")


def _load_speech(path: Path, field: str, load_audio, probe, expect_kind) -> np.ndarray:
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


def _rendered_ahead(pool, renderer, still, faces: list, n_frames: int, clock, ahead: int = 4) -> Iterator:
    """(rendered frame, faces) for each index of a still, computed by `pool` up to `ahead` frames early."""
    pending: deque = deque()
    for index in range(n_frames + ahead):
        if index < n_frames:
            pending.append(pool.submit(renderer.render, still, index, faces))
        if pending and (len(pending) > ahead or index >= n_frames):
            with clock("render"):  # the wait for a frame is this stage's time
                out = pending.popleft().result()
            yield out, faces


def _decoded(source, n_frames: int, clock) -> Iterator:
    """Frames on the output timeline: truncated or ping-pong extended."""
    frames = source.frames(n_frames)
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
