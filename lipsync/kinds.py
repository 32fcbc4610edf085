"""The three job kinds, defined once. Everything that names a kind (the REST routes, request classes, the
studio's tabs, the CLI's subcommands, engines' declarations, the hosted client) reads this table.

`name` is the hosted API's route and a job record's `model` field ("lipsync-video"); `tab` is the short
name the studio and the CLI use ("video"). Cheap to import: no dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    name: str  # the hosted API's route: POST /api/v1/<name>
    tab: str  # the studio's tab and the CLI's subcommand
    title: str  # shown to people
    visual: str  # the field of the picture: "video" or "image"
    audio_fields: tuple[str, ...]  # one per speaker
    summary: str  # one line, for --help

    @property
    def media_fields(self) -> tuple[str, ...]:
        return (self.visual, *self.audio_fields)


VIDEO = JobKind("lipsync-video", "video", "Video dub", "video", ("audio",), "dub a video with new audio")
IMAGE = JobKind("lipsync-image", "image", "Talking image", "image", ("audio",), "make a portrait talk")
DIALOGUE = JobKind("lipsync-image-multi", "dialogue", "Dialogue", "image", ("left_audio", "right_audio"),
                   "two people in one image, left and right audio")

KINDS = (VIDEO, IMAGE, DIALOGUE)
NAMES = tuple(k.name for k in KINDS)
TABS = tuple(k.tab for k in KINDS)
BY_NAME = {k.name: k for k in KINDS}
# Every field that names a file or URL, in any kind (the mask is an option every kind has).
# Pictures first, then speech: errors about a job's media name its picture first.
MEDIA_FIELDS = tuple(dict.fromkeys([k.visual for k in KINDS] + [a for k in KINDS for a in k.audio_fields])) + ("mask_image",)
BY_TAB = {k.tab: k for k in KINDS}

# How a video dub fills the audio's length when the video is shorter (the one list: requests, the CLI, the
# studio, the frame plan and the cost line read it). A longer video is cut to the audio in every mode.
LENGTH_MODES = {
    "bounce": "play the video forward, then backward, and so on (default)",
    "loop": "play the video again from its first frame",
    "freeze": "hold the video's last frame",
    "cut_audio": "stop at the video's end: the output lasts as long as the video, the audio is cut",
}
DEFAULT_LENGTH_MODE = "bounce"
