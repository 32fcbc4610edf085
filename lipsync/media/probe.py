"""What a media file is: image, video or audio, with its size, duration and rotation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from ..errors import InputError

UNREADABLE = "cannot read this file as audio, video or image"


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    kind: str  # "video" | "audio" | "image"
    duration: float | None  # seconds (the whole container); None for images
    width: int | None  # display size after rotation
    height: int | None
    fps: float | None  # average frame rate
    rotation: int  # counter-clockwise degrees to turn the coded frames upright: 0/90/180/270
    has_audio: bool
    sample_rate: int | None
    channels: int | None


def _is_image_format(fmt: str) -> bool:
    return any(name == "image2" or name.endswith("_pipe") for name in fmt.split(","))


def video_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """Real video streams: cover art in audio files (attached pictures) does not count."""
    return [
        s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
    ]


def rotation_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Display rotation from the frame's display matrix, else a legacy ``rotate`` tag."""
    degrees = frame.rotation
    if not degrees:
        try:
            degrees = -int(float(stream.metadata.get("rotate", 0)))  # the tag is clockwise
        except ValueError:
            degrees = 0
    return int(round(degrees / 90.0)) * 90 % 360


def _first_frame(container, stream):
    for frame in container.decode(stream):
        return frame
    return None


def _measure_duration(path: Path, audio_only: bool) -> float | None:
    """Fallback when headers carry no duration: walk the packets (decode audio to count samples)."""
    with av.open(str(path)) as container:
        if audio_only:
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / stream.codec_context.sample_rate if samples else None
        streams = video_streams(container) + list(container.streams.audio)
        end = 0.0
        for packet in container.demux(streams):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        return end or None


def _container_duration(container) -> float | None:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    durations = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base is not None
    ]
    return max(durations) if durations else None


def _image_size(path: Path, width: int, height: int) -> tuple[int, int]:
    """Swap the size for JPEGs whose EXIF orientation turns them sideways."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            if img.getexif().get(0x0112) in (5, 6, 7, 8):
                return height, width
    except Exception:
        pass
    return width, height


def probe(path: Path, field: str) -> MediaInfo:
    """Inspect ``path``; every problem is an InputError naming ``field``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(field, f"file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(field, "file is empty")
    try:
        with av.open(str(path)) as container:
            return _probe_open(path, container)
    except InputError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError, ZeroDivisionError) as exc:
        raise InputError(field, UNREADABLE) from exc


def _probe_open(path: Path, container) -> MediaInfo:
    videos = video_streams(container)
    audios = list(container.streams.audio)
    audio = audios[0] if audios else None
    sample_rate = audio.codec_context.sample_rate if audio else None
    channels = audio.codec_context.channels if audio else None

    if videos:
        stream = videos[0]
        stream.thread_type = "AUTO"
        frame = _first_frame(container, stream)
        if frame is None:
            raise av.InvalidDataError(0, "no frames")
        width, height = frame.width, frame.height
        still = _is_image_format(container.format.name)
        if not still and container.format.name == "gif":
            container.seek(0)
            still = sum(1 for p in container.demux(stream) if p.size) <= 1
        if still and audio is None:
            width, height = _image_size(path, width, height)
            return MediaInfo(path, "image", None, width, height, None, 0, False, None, None)
        rotation = rotation_of(frame, stream)
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        duration = _container_duration(container) or _measure_duration(path, audio_only=False)
        return MediaInfo(
            path, "video", duration, width, height, float(rate) if rate else None, rotation,
            audio is not None, sample_rate, channels,
        )

    if audio is not None:
        if _first_frame(container, audio) is None:
            raise av.InvalidDataError(0, "no audio frames")
        duration = _container_duration(container) or _measure_duration(path, audio_only=True) or 0.0
        return MediaInfo(path, "audio", duration, None, None, None, 0, True, sample_rate, channels)

    raise av.InvalidDataError(0, "no audio or video streams")


_NAMES = {"audio": "an audio file", "video": "a video", "image": "an image"}


def expect_kind(info: MediaInfo, field: str, allowed: tuple[str, ...]) -> None:
    """Raise if ``info.kind`` is not one of ``allowed``.

    A field that takes audio also takes a video, for its sound: then the video must have an audio track.
    """
    if info.kind not in allowed:
        if set(allowed) == {"audio", "video"}:
            wanted = "an audio file (or a video with sound)"
        else:
            wanted = " or ".join(_NAMES.get(k, k) for k in allowed)
        raise InputError(field, f"expected {wanted}, got {_NAMES.get(info.kind, info.kind)}")
    if "audio" in allowed and info.kind == "video" and not info.has_audio:
        raise InputError(field, "video has no audio track")
