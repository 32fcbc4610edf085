"""Take about half off `import gradio`, so that the studio is ready in under 5 s (README, Benchmarks).

Gradio's `ComponentMeta` regenerates each component's `.pyi` type stub on every import: it re-reads and
`ast`-parses the component's source file and renders a Jinja template, for some 80 classes. That is a tool
for Gradio's own developers (an installed wheel already ships the stubs, and a read-only install cannot
write them anyway), and it costs about half of `import gradio`. This module skips just that step: the
classes Gradio builds are unchanged.

`install()` must run before the first `import gradio`; later it does nothing (the cost is already paid).
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Optional, Sequence

_MODULE = "gradio.component_meta"
_HOOK = "create_or_modify_pyi"


def _skip_stub_generation(*args, **kwargs) -> None:
    """Stands in for Gradio's `create_or_modify_pyi`: the stubs are not needed to run an app."""


class _Loader(importlib.abc.Loader):
    """Wraps the module's own loader: executes it as usual, then swaps the stub generator before any
    component class is defined. Everything else (get_source, ...) is the original loader's."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        # Only replace what we know: a Gradio without this hook is left exactly as it is.
        if callable(getattr(module, _HOOK, None)):
            setattr(module, _HOOK, _skip_stub_generation)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _SkipStubs(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` through the other finders and hands back its spec with the loader
    wrapped (the spec is new for this import; the original loader object is left untouched)."""

    def find_spec(self, name: str, path: Optional[Sequence[str]], target=None):
        if name != _MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> bool:
    """Install the finder if Gradio is not imported yet; True when the next `import gradio` uses it."""
    if _MODULE in sys.modules:
        return False
    if not any(isinstance(finder, _SkipStubs) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SkipStubs())
    return True


def installed() -> bool:
    """Whether the imported Gradio skips stub generation."""
    module = sys.modules.get(_MODULE)
    return module is not None and getattr(module, _HOOK, None) is _skip_stub_generation
