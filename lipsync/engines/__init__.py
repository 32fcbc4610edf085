"""Engine registry. Engines are modules (see `base`); they are imported only when asked for."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import EngineError

# name → module path. Neural engines register here too; importing them must stay cheap.
KNOWN_ENGINES = {
    "builtin": "lipsync.engines.builtin",
}
DEFAULT_ENGINE = "builtin"


def get_engine(name: str | None) -> ModuleType:
    name = name or DEFAULT_ENGINE
    if name not in KNOWN_ENGINES:
        raise EngineError(f"engine: unknown engine {name!r}; available: {', '.join(KNOWN_ENGINES)}")
    return importlib.import_module(KNOWN_ENGINES[name])


def list_engines() -> list[ModuleType]:
    return [get_engine(name) for name in KNOWN_ENGINES]
