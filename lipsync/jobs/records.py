"""Job records shaped like the hosted API's job object, kept as JSON files under LIPSYNC_HOME/jobs."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from .. import config

Status = Literal["processing", "completed", "failed"]
STAGES = ("decode", "analysis", "render", "encode")


class JobRecord(BaseModel):
    """The hosted job object (id, model, status, output, error, executionTime, timings) plus local details."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    model: str
    status: Status = "processing"
    output: Optional[str] = None
    error: Optional[str] = None
    executionTime: Optional[int] = None  # milliseconds
    timings: dict[str, int] = Field(default_factory=dict)  # milliseconds per stage
    # Local extras: what was asked, what the engine made of it, what it would cost hosted.
    createdAt: float = Field(default_factory=time.time)
    request: dict[str, Any] = Field(default_factory=dict)
    engine: Optional[str] = None
    duration: Optional[float] = None  # output seconds
    credits: Optional[int] = None
    warnings: list[str] = Field(default_factory=list)
    ignoredPromptWords: list[str] = Field(default_factory=list)
    compare: Optional[str] = None  # the before/after MP4 beside the output, when the request asked for one
    # The studio browser session that made the job (a hash); None for REST and CLI jobs. Visitors of a
    # shared studio see only their own session's jobs.
    session: Optional[str] = None
    # The Celery worker (its hostname) that rendered the job, when the server uses workers.
    worker: Optional[str] = None

    def public(self) -> dict[str, Any]:
        """Exactly the hosted API's job object."""
        return self.model_dump(include={"id", "model", "status", "output", "error", "executionTime", "timings"})


def save(record: JobRecord, folder: Path | None = None) -> Path:
    """Atomically write the record (temp file + rename) so a crash never leaves half a JSON file."""
    folder = folder or config.jobs_dir()
    path = folder / f"{record.id}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{record.id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(record.model_dump_json(indent=2))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(job_id: str, folder: Path | None = None) -> JobRecord:
    folder = folder or config.jobs_dir()
    return JobRecord.model_validate(json.loads((folder / f"{job_id}.json").read_text()))


def list_jobs(folder: Path | None = None) -> list[JobRecord]:
    """All stored jobs, newest first; unreadable files are skipped."""
    folder = folder or config.jobs_dir()
    records = []
    for path in folder.glob("*.json"):
        try:
            records.append(JobRecord.model_validate(json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.createdAt, reverse=True)


def delete(job_id: str, folder: Path | None = None) -> None:
    """Remove a job record and its output file."""
    folder = folder or config.jobs_dir()
    path = folder / f"{job_id}.json"
    if path.exists():
        record = load(job_id, folder)
        if record.output and Path(record.output).is_file() and Path(record.output).parent == config.outputs_dir():
            Path(record.output).unlink()
        path.unlink()
