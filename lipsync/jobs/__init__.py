"""Jobs: running a request and keeping its record (the hosted API's job object).

`run_job` loads on first use (PEP 562): reading and listing records does not import the render stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import JobRecord, delete, list_jobs, load, save

if TYPE_CHECKING:
    from .runner import run_job


def __getattr__(name: str):
    if name == "run_job":
        from .runner import run_job

        return run_job
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = ["JobRecord", "delete", "list_jobs", "load", "run_job", "save"]
