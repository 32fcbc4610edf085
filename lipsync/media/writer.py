"""Frames + audio out: an H.264/AAC MP4 written by the ffmpeg binary, atomically."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .audio import write_wav

_PIPE_SIZE = 1 << 20  # a bigger pipe lets Python hand over a frame while ffmpeg is busy encoding


@dataclass(frozen=True)
class AudioTrack:
    path: Path  # any file with an audio stream (its first one is used)
    start: float = 0.0  # seconds on the output timeline
    loop: bool = False  # play it again and again (the output's duration still ends it)

    def input_args(self) -> list[str]:
        return [*(("-stream_loop", "-1") if self.loop else ()), "-i", str(self.path)]


@dataclass(frozen=True)
class AudioMix:
    """The output audio as ffmpeg should build it from the source files, so Python never holds the
    full-rate audio of a long job: each track placed at its start, summed, gained, peak-limited, and
    padded or cut to `duration`. A `background` (the dubbed video's own sound) goes under the speech at
    `background_db` relative to its own level, untouched by the speech's gain."""

    tracks: tuple[AudioTrack, ...]
    duration: float
    gain_db: float = 0.0
    peak: float = 0.95
    sample_rate: int = 48000
    background: Optional[AudioTrack] = None
    background_db: float = 0.0

    def input_args(self) -> list[str]:
        return [arg for track in (*self.tracks, *filter(None, [self.background])) for arg in track.input_args()]

    def filter_graph(self, first_input: int) -> str:
        parts, labels = [], []
        for i, track in enumerate(self.tracks):
            delay = round(track.start * 1000)
            parts.append(f"[{first_input + i}:a:0]aresample={self.sample_rate},"
                         f"aformat=sample_fmts=fltp:channel_layouts=mono,adelay={delay}:all=1[t{i}]")
            labels.append(f"[t{i}]")
        mixed = "".join(labels)
        if len(labels) > 1:
            parts.append(f"{mixed}amix=inputs={len(labels)}:normalize=0:duration=longest[mix]")
            mixed = "[mix]"
        parts.append(f"{mixed}volume={self.gain_db:.3f}dB[speech]")
        mixed = "[speech]"
        if self.background is not None:
            parts.append(f"[{first_input + len(self.tracks)}:a:0]aresample={self.sample_rate},"
                         f"aformat=sample_fmts=fltp:channel_layouts=mono,volume={self.background_db:.3f}dB[bg]")
            parts.append("[speech][bg]amix=inputs=2:normalize=0:duration=longest[withbg]")
            mixed = "[withbg]"
        # level=0: alimiter otherwise re-normalises its output to the limit.
        parts.append(f"{mixed}alimiter=limit={self.peak}:attack=5:release=50:level=0,"
                     f"apad,atrim=0:{self.duration:.6f}[aout]")
        return ";".join(parts)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class VideoWriter:
    """Write RGB frames at ``fps`` plus audio to ``out_path`` (H.264 yuv420p + AAC).

    ``audio`` is float mono samples at ``sr``, or an ``AudioMix`` that ffmpeg builds from the source files.

    The caller writes ``expected_frames`` frames (round(audio duration * fps)); if fewer arrive the last one
    is held, so the video always lasts as long as the audio. The file appears at ``out_path`` only once
    ffmpeg has finished successfully. Use as a context manager: an exception inside aborts and leaves nothing.
    """

    def __init__(
        self,
        out_path: Path,
        size: tuple[int, int],
        audio: Union[np.ndarray, AudioMix],
        sr: int | None = None,
        fps: int = 25,
        crf: int = 20,
        preset: str = "veryfast",
    ):
        self.out_path = Path(out_path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = int(fps)
        if not isinstance(audio, AudioMix):
            audio = np.asarray(audio, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                raise ValueError("VideoWriter needs non-empty audio")
            if not sr:
                raise ValueError("VideoWriter needs the sample rate of the audio samples")
        duration = audio.duration if isinstance(audio, AudioMix) else audio.size / sr
        if duration <= 0:
            raise ValueError("VideoWriter needs non-empty audio")
        if self.size[0] % 2 or self.size[1] % 2:
            raise ValueError(f"frame size must be even for yuv420p, got {self.size}")
        self.expected_frames = max(1, round(duration * self.fps))
        self.frames_written = 0
        self._last: np.ndarray | None = None
        self._done = False
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_dir = Path(tempfile.mkdtemp(prefix="lipsync-writer-"))
        self._part = self.out_path.with_name(f".{self.out_path.stem}.{secrets.token_hex(4)}.part.mp4")
        try:
            if isinstance(audio, AudioMix):
                audio_in = audio.input_args()
                audio_map = ["-filter_complex", audio.filter_graph(first_input=1), "-map", "[aout]"]
            else:
                wav = self._tmp_dir / "audio.wav"
                write_wav(wav, audio, sr)
                audio_in, audio_map = ["-i", str(wav)], ["-map", "1:a:0"]
            self._stderr = open(self._tmp_dir / "ffmpeg.log", "w+b")
            w, h = self.size
            cmd = [
                ffmpeg_exe(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(self.fps), "-i", "pipe:0",
                *audio_in,
                "-map", "0:v:0", *audio_map,
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                # Two cores: x264's default of 3 frame threads plus our producer only adds contention.
                "-threads", "2",
                "-c:a", "aac", "-b:a", "192k",
                "-movflags", "+faststart", "-f", "mp4", str(self._part),
            ]  # fmt: skip
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException:
            self._cleanup()
            raise
        try:
            fcntl.fcntl(self._proc.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ"), _PIPE_SIZE)
        except (OSError, AttributeError):
            pass  # not Linux, or over the system limit: the default pipe still works

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape (h, w, 3)."""
        if self._done:
            raise RuntimeError("VideoWriter is closed")
        w, h = self.size
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {(h, w, 3)}, got {frame.dtype} {frame.shape}")
        frame = np.ascontiguousarray(frame)
        try:
            self._proc.stdin.write(memoryview(frame).cast("B"))
        except (BrokenPipeError, OSError):
            self._fail("ffmpeg stopped while receiving frames")
        self._last = frame
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it to ``out_path``; raises RuntimeError with ffmpeg's message on failure."""
        if self._done:
            return
        if self._last is None:
            self.abort()
            raise RuntimeError("no frames were written")
        try:
            for _ in range(self.expected_frames - self.frames_written):
                self._proc.stdin.write(memoryview(self._last).cast("B"))
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            self._fail("ffmpeg stopped while receiving frames")
        rc = self._proc.wait()
        if rc != 0:
            self._fail(f"ffmpeg exited with code {rc}")
        # Outputs are the owner's alone (ffmpeg creates files with the umask's mode, usually 0644).
        os.chmod(self._part, 0o600)
        os.replace(self._part, self.out_path)
        self._done = True
        self._cleanup()

    def abort(self) -> None:
        """Stop ffmpeg and delete everything written so far."""
        if self._done:
            return
        self._done = True
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()
        self._cleanup()

    def _fail(self, what: str) -> None:
        self._proc.kill() if self._proc.poll() is None else None
        self._proc.wait()
        tail = self._stderr_tail()
        self.abort()
        raise RuntimeError(f"{what}: {tail}" if tail else what)

    def _stderr_tail(self, limit: int = 2000) -> str:
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace").strip()[-limit:]
        except (OSError, ValueError):
            return ""

    def _cleanup(self) -> None:
        stderr = getattr(self, "_stderr", None)
        if stderr is not None:
            stderr.close()
        self._part.unlink(missing_ok=True)
        shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
