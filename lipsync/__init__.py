"""Lipsync Studio: local, offline lip sync. `run_job(request)` is the one entry point the CLI, the UI
and the REST server share."""

from .errors import InputError, LipsyncError
from .requests import ImageRequest, MultiRequest, VideoRequest, parse_request

__version__ = "0.1.0"


def run_job(request, **kwargs):
    """Render a request and return its job record (see `lipsync.jobs.run_job`)."""
    from .jobs.runner import run_job as _run

    return _run(request, **kwargs)


__all__ = ["ImageRequest", "InputError", "LipsyncError", "MultiRequest", "VideoRequest", "parse_request", "run_job"]
