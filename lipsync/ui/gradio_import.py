"""Make `import gradio` about 2.5 s faster on a 2-core machine, so the studio is ready in under 5 s.

Gradio's `ComponentMeta` regenerates each component's `.pyi` type stub on every import: it re-reads and
`ast`-parses the component's source file and renders a Jinja template, for some 80 classes. That is a tool
for Gradio's own developers (an installed wheel already ships the stubs, and a read-only install cannot
write them anyway) and it costs about half of `import gradio` (5.3 s → 2.9 s measured here). This module
skips just that step: the classes Gradio builds are unchanged.

`install()` must run before the first `import gradio`; later it does nothing (the cost is already paid).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Optional, Sequence

_MODULE = "gradio.component_meta"
_HOOK = "create_or_modify_pyi"


def _skip_stub_generation(*args, **kwargs) -> None:
    """Stands in for Gradio's `create_or_modify_pyi`: the stubs are not needed to run an app."""


class _SkipStubs(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as usual and swaps its stub generator right after it executes,
    before any component class is defined."""

    def find_spec(self, name: str, path: Optional[Sequence[str]], target=None):
        if name != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module) -> None:
            loader_exec(module)
            # Only replace what we know: a Gradio without this hook is left exactly as it is.
            if callable(getattr(module, _HOOK, None)):
                setattr(module, _HOOK, _skip_stub_generation)

        spec.loader.exec_module = exec_module
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
