"""Jobs: running a request and keeping its record (the hosted API's job object)."""

from .records import JobRecord, delete, list_jobs, load, save
from .runner import run_job

__all__ = ["JobRecord", "delete", "list_jobs", "load", "run_job", "save"]
