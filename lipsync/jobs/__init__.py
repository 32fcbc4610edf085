"""Jobs: running a request and keeping its record (the hosted API's job object).

`run_job` loads on first use (PEP 562): reading and listing records does not import the render stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .records import JobRecord, delete, list_jobs, load, save

if TYPE_CHECKING:
    from .runner import run_job

__getattr__, __dir__ = lazy_exports(__name__, {"run_job": "runner"})

__all__ = ["JobRecord", "delete", "list_jobs", "load", "run_job", "save"]
