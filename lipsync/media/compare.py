"""A before/after MP4: the source video beside the dub, side by side, with the dub's audio (moviepy).

Both sides stream: the dub is read by moviepy's ffmpeg reader, the source by our own VideoSource on the
output's timeline (same size, same length mode), so frame k on the left is what the engine was given for
frame k on the right.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .video import VideoSource


class _Timeline:
    """moviepy asks for frames by time, in order when writing: hand out VideoSource's frames one by one
    (starting over should it ever step back)."""

    def __init__(self, source: VideoSource, n_frames: int, fps: int, length_mode: str):
        self.source, self.n_frames, self.fps, self.length_mode = source, n_frames, fps, length_mode
        self.frames, self.index, self.frame = None, -1, None

    def __call__(self, t: float) -> np.ndarray:
        k = min(self.n_frames - 1, max(0, int(round(t * self.fps))))
        if self.frames is None or k < self.index:
            self.frames, self.index = self.source.frames(self.n_frames, self.length_mode), -1
        while self.index < k:
            self.frame, self.index = next(self.frames), self.index + 1
        return self.frame

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


def side_by_side(source: Path, dub: Path, out_path: Path, *, size: tuple[int, int], fps: int, n_frames: int,
                 length_mode: str) -> None:
    """Write `out_path` (twice the dub's width): `source` left, `dub` right; it appears only when complete."""
    from moviepy import VideoClip, VideoFileClip, clips_array

    out_path = Path(out_path)
    part = out_path.with_name(f".{out_path.stem}.{secrets.token_hex(4)}.part.mp4")
    scratch = tempfile.mkdtemp(prefix="lipsync-compare-")
    after = VideoFileClip(str(dub))
    try:
        with VideoSource(source, "video", size, fps) as src:
            timeline = _Timeline(src, n_frames, fps, length_mode)
            try:
                before = VideoClip(timeline, duration=after.duration)
                both = clips_array([[before, after]]).with_audio(after.audio)
                both.write_videofile(str(part), fps=fps, codec="libx264", audio_codec="aac", preset="veryfast",
                                     ffmpeg_params=["-crf", "18", "-pix_fmt", "yuv420p"], temp_audiofile_path=scratch,
                                     logger=None)
            finally:
                timeline.close()
        os.chmod(part, 0o600)
        os.replace(part, out_path)
    finally:
        after.close()
        part.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
