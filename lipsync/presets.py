"""Named settings the UI offers ("Quick preview", "Quality 720p", ...).

A preset is one JSON file: a display ``name``, a ``description`` and any of the request
options ``resolution``, ``engine``, ``prompt``, ``seed``, ``order`` and ``mask_image``.
Its id (slug) is the file name without ``.json``.

Built-in presets are the repo's ``presets/`` folder, found as ``Path(__file__).parents[1] / "presets"``
(it sits beside the package in a checkout or an editable install); a wheel that ships them as
package data puts them at ``lipsync/presets/``, which is tried too. User presets are saved under
``lipsync.config.home() / "presets"`` and shadow a built-in preset with the same slug.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import home
from .engines import DEFAULT_ENGINE
from .errors import InputError
from .requests import MultiRequest, Order, Resolution, validation_to_input_error

logger = logging.getLogger(__name__)

SUFFIX = ".json"
_MULTI_MODEL = MultiRequest.model_fields["model"].default


class Preset(BaseModel):
    """One named set of request options. Unset options keep the request's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    resolution: Resolution = "480p"
    engine: str = DEFAULT_ENGINE
    prompt: Optional[str] = None
    seed: Optional[int] = Field(default=None, ge=0, le=2**32 - 1)
    # Speaking order only means something for two-person jobs; None keeps their default.
    order: Optional[Order] = None
    mask_image: Optional[str] = None

    @field_validator("prompt", "mask_image", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("name")
    @classmethod
    def _name_has_slug(cls, value: str) -> str:
        if not slugify(value):
            raise ValueError("must contain a letter or a digit")
        return value.strip()

    @property
    def slug(self) -> str:
        return slugify(self.name)

    def options(self, model: Optional[str] = None) -> dict:
        """The request options this preset names, ready for ``parse_request(model, {**options, **form})``.

        ``order`` is left out unless ``model`` is a two-person job (or None), because the
        other request kinds reject unknown options.
        """
        data = self.model_dump(exclude={"name", "description"})
        if data["order"] is None or (model is not None and model != _MULTI_MODEL):
            del data["order"]
        return data


def slugify(name: str) -> str:
    """"Quality 720p" -> "quality-720p": the file name a preset is saved and looked up under."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def builtin_dir() -> Path:
    """The shipped presets: the repo's ``presets/`` beside the package, else package data."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "presets", here.parent / "presets"):
        if candidate.is_dir():
            return candidate
    return here.parents[1] / "presets"


def user_dir() -> Path:
    path = home() / "presets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_preset(path: Path) -> Preset:
    """Load one preset file; errors name the file and the offending key."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("preset", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("preset", f"{path.name}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError("preset", f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError("preset", f"{path.name}: expected a JSON object")
    try:
        return Preset(**data)
    except ValidationError as exc:
        err = validation_to_input_error(exc)
        raise InputError("preset", f"{path.name}: {err.field} {err.problem}") from None


def _folder_presets(folder: Path, *, strict: bool) -> dict[str, Preset]:
    """Presets in ``folder`` by slug. A broken user file is skipped (and logged) so one bad
    file does not hide the rest; a broken built-in is a bug and raises."""
    found: dict[str, Preset] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            found[path.stem] = read_preset(path)
        except InputError as exc:
            if strict:
                raise
            logger.warning("skipping preset %s", exc)
    return found


def list_presets(folder: Optional[Path] = None) -> list[Preset]:
    """Presets sorted by slug: those in ``folder`` alone, or by default the built-in ones plus
    the user's (a user preset replaces a built-in one with the same slug)."""
    if folder is not None:
        merged = _folder_presets(Path(folder), strict=False)
    else:
        merged = {**_folder_presets(builtin_dir(), strict=True), **_folder_presets(user_dir(), strict=False)}
    return [merged[slug] for slug in sorted(merged)]


def load_preset(name_or_path: Union[str, Path]) -> Preset:
    """A preset by slug or display name ("quality-720p", "Quality 720p"), user ones first,
    or from a ``.json`` file path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(SUFFIX) or os.sep in text or "/" in text:
        return read_preset(Path(name_or_path).expanduser())
    slug = slugify(text)
    for folder in (user_dir(), builtin_dir()):
        path = folder / f"{slug}{SUFFIX}"
        if slug and path.is_file():
            return read_preset(path)
    known = ", ".join(p.slug for p in list_presets()) or "none"
    raise InputError("preset", f"unknown preset {text!r}; expected one of {known}")


def save_preset(preset: Preset, folder: Optional[Path] = None) -> Path:
    """Write ``preset`` as ``<slug>.json`` (default folder: the user's presets) and return the path.

    An existing preset with the same slug is replaced; the write is atomic so a crash never
    leaves a half-written file for ``list_presets`` to trip over.
    """
    target_dir = Path(folder) if folder is not None else user_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / f"{preset.slug}{SUFFIX}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(preset.model_dump(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
