"""The hosted API's credit rules, so every tab and the CLI can show what a job would cost there.

billed seconds = max(5, ceil(duration)); 480p costs 2 credits/s, 720p 4 credits/s.
Video dub bills the audio (the output follows it). Dialogue bills the longer track for
``meanwhile``, else left + right.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .kinds import DEFAULT_LENGTH_MODE, LENGTH_MODES

MIN_SECONDS = 5
RATES = {"480p": 2, "720p": 4}


@dataclass(frozen=True)
class Estimate:
    credits: int
    billed_seconds: int
    duration: float
    rate: int
    resolution: str
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return f"{self.credits} credits — {self.rule}"


def _bill(duration: float, resolution: str, why: str) -> Estimate:
    if resolution not in RATES:
        raise ValueError(f"resolution: {resolution!r} is not allowed; expected 480p or 720p")
    if duration < 0 or math.isnan(duration):
        raise ValueError("duration must be a non-negative number of seconds")
    # Round up fractional seconds, but ignore float noise such as 3.0000000001.
    seconds = math.ceil(round(duration, 6))
    billed = max(MIN_SECONDS, seconds)
    rate = RATES[resolution]
    floor = f"minimum {MIN_SECONDS} s applies" if billed > seconds else f"{billed} s billed"
    rule = f"{why}; {floor}; {billed} s × {rate} credits/s at {resolution}"
    return Estimate(billed * rate, billed, float(duration), rate, resolution, rule)


def estimate_video(audio_seconds: float, video_seconds: float | None = None, resolution: str = "480p",
                   length_mode: str = DEFAULT_LENGTH_MODE) -> Estimate:
    """Video dub: the hosted output follows the audio, so the audio's length is billed. The hosted API only
    truncates a longer video or extends a shorter one by its own rule: a local `length_mode` (kinds.LENGTH_MODES)
    is not sent, and the rule says so when it matters."""
    if length_mode not in LENGTH_MODES:
        raise ValueError(f"length_mode: {length_mode!r} is not allowed; expected one of {', '.join(LENGTH_MODES)}")
    why = f"audio {audio_seconds:.2f} s"
    if video_seconds is not None:
        if video_seconds > audio_seconds + 1e-6:
            why += f" (video {video_seconds:.2f} s is truncated to it)"
        elif video_seconds < audio_seconds - 1e-6 and length_mode == "cut_audio":
            local = _bill(video_seconds, resolution, "")
            why += (f" (video {video_seconds:.2f} s: the local cut_audio render stops there and is "
                    f"{local.billed_seconds} s, {local.credits} credits; the hosted API has no cut_audio, extends "
                    f"the video and bills the whole audio)")
        elif video_seconds < audio_seconds - 1e-6:
            why += (f" (video {video_seconds:.2f} s is extended to it: locally by {length_mode}, hosted by its own "
                    f"extend rule, as the length mode is local only)")
    return _bill(audio_seconds, resolution, why)


def estimate_image(audio_seconds: float, resolution: str = "480p") -> Estimate:
    return _bill(audio_seconds, resolution, f"audio {audio_seconds:.2f} s")


def estimate_multi(left_seconds: float, right_seconds: float, order: str = "meanwhile",
                   resolution: str = "480p") -> Estimate:
    if order == "meanwhile":
        duration = max(left_seconds, right_seconds)
        why = f"meanwhile: the longer track, {duration:.2f} s"
    elif order in ("left_right", "right_left"):
        duration = left_seconds + right_seconds
        why = f"{order}: left {left_seconds:.2f} s + right {right_seconds:.2f} s"
    else:
        raise ValueError(f"order: {order!r} is not allowed; expected meanwhile, left_right or right_left")
    return _bill(duration, resolution, why)
