"""The Gradio studio: `build_ui(studio)` makes the Blocks, `app.py` serves them beside the REST API.

Importing this package is cheap; Gradio is imported by `build_ui` (via `layout`).
"""

from .studio import Limits, Studio, default_limits, on_space


def build_ui(studio: Studio | None = None):
    """The studio's `gr.Blocks` (see `lipsync.ui.layout.build_ui`)."""
    from .layout import build_ui as _build

    return _build(studio)


__all__ = ["Limits", "Studio", "build_ui", "default_limits", "on_space"]
