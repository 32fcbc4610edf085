"""Typed requests, field for field the hosted API's ``formState``.

Media fields take a local path or an http(s) URL. Validation errors name the field.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from .engines import DEFAULT_ENGINE, KNOWN_ENGINES  # names only: no engine module is imported
from .errors import InputError
from .kinds import DEFAULT_LENGTH_MODE, DIALOGUE, IMAGE, LENGTH_MODES, NAMES, VIDEO

Resolution = Literal["480p", "720p"]
Order = Literal["meanwhile", "left_right", "right_left"]
Model = Literal[NAMES]
LengthMode = Literal[tuple(LENGTH_MODES)]
# A face chosen by its index among the detected faces (left to right, from 0), or by a box
# (x0, y0, x1, y1) in the input image's pixels: the detected face that overlaps it most.
# Numbers are strict: JSON `true` is not a seed, nor "7" (form fields are converted by the server, which
# knows they are text: see INT_FIELDS).
FaceChoice = Union[Annotated[StrictInt, Field(ge=0)], tuple[StrictFloat, StrictFloat, StrictFloat, StrictFloat]]


class _Options(BaseModel):
    """Options every job kind shares (hosted API names), plus local-only extras."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: Resolution = "480p"
    mask_image: Optional[str] = None
    prompt: Optional[str] = None
    seed: Optional[StrictInt] = Field(default=None, ge=0, le=2**32 - 1)
    # Local extras (not in the hosted formState): engine choice and transcripts for phone timing.
    engine: str = Field(default=DEFAULT_ENGINE, json_schema_extra={"enum": list(KNOWN_ENGINES)})

    @field_validator("mask_image", "prompt", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in KNOWN_ENGINES:
            raise ValueError(f"unknown engine {value!r}; available: {', '.join(KNOWN_ENGINES)}")
        return value


class VideoRequest(_Options):
    model: Literal[VIDEO.name] = VIDEO.name
    video: str
    audio: str
    transcript: Optional[str] = None
    face_index: Optional[StrictInt] = Field(default=None, ge=0)
    # Local extras: when the audio and video lengths differ (kinds.LENGTH_MODES); the source's own audio
    # kept under the speech at this level in dB (None: dropped); a before/after side-by-side MP4 next to
    # the output.
    length_mode: LengthMode = DEFAULT_LENGTH_MODE
    keep_background: Optional[StrictFloat] = Field(default=None, ge=-60.0, le=12.0, allow_inf_nan=False)
    compare: bool = False


class ImageRequest(_Options):
    model: Literal[IMAGE.name] = IMAGE.name
    image: str
    audio: str
    transcript: Optional[str] = None
    face_index: Optional[StrictInt] = Field(default=None, ge=0)


class MultiRequest(_Options):
    model: Literal[DIALOGUE.name] = DIALOGUE.name
    image: str
    left_audio: str
    right_audio: str
    order: Order = "meanwhile"
    left_transcript: Optional[str] = None
    right_transcript: Optional[str] = None
    # Override which detected faces speak.
    left_face: Optional[FaceChoice] = None
    right_face: Optional[FaceChoice] = None


Request = Union[VideoRequest, ImageRequest, MultiRequest]
# Options that take a whole number (a face may also be a box): what a text form field may be converted to.
INT_FIELDS = frozenset({"seed", "face_index", "left_face", "right_face"})
# Options that take a number of dB: form fields (text) are converted by the server.
FLOAT_FIELDS = frozenset({"keep_background"})

# The request class of each job kind (by its `model` field's default: the kinds table names them).
REQUEST_CLASSES = {cls.model_fields["model"].default: cls for cls in (VideoRequest, ImageRequest, MultiRequest)}
assert tuple(REQUEST_CLASSES) == NAMES, "a job kind without a request class"
_BY_MODEL = REQUEST_CLASSES


def parse_request(model: str, form_state: dict) -> Request:
    """Build a request from a hosted-API style ``formState``; errors name the offending field."""
    if model not in _BY_MODEL:
        raise InputError("model", f"unknown job kind {model!r}; expected one of {', '.join(_BY_MODEL)}")
    data = {k: v for k, v in form_state.items() if v is not None}
    data.pop("model", None)
    try:
        return _BY_MODEL[model](**data)
    except ValidationError as exc:
        raise validation_to_input_error(exc) from None


def validation_to_input_error(exc: ValidationError) -> InputError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "request"
    kind = err.get("type", "")
    if kind == "missing":
        problem = "is required"
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        problem = f"{err.get('input')!r} is not allowed; expected {expected}"
    elif kind == "extra_forbidden":
        problem = "is not a known option"
    elif kind == "value_error":
        problem = str(err.get("ctx", {}).get("error", err.get("msg", "is invalid")))
    elif kind == "int_type":
        problem = f"{err.get('input')!r} is not allowed; expected a whole number"
    elif kind == "float_type":
        problem = f"{err.get('input')!r} is not allowed; expected a number"
    else:
        problem = err.get("msg", "is invalid")
    return InputError(field, problem)
