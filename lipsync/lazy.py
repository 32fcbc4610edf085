"""Package exports that import their module on first use (PEP 562), to keep start-up paths light.

    __getattr__, __dir__ = lazy_exports(__name__, {"VideoWriter": "writer", ...})

A name must not equal a submodule's name: once that submodule is imported, Python binds the package
attribute to the module and `__getattr__` is never asked (import such names eagerly instead).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, serving each name in `exports` from its submodule."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *exports})

    return __getattr__, __dir__
