"""Jobs of the REST API in SQLite, so a restart loses none.

A job goes queued → running → done. Its public face is a `JobRecord` (the hosted job object); the row
also keeps what the worker needs: the formState, uploaded files, the webhook and who submitted it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..jobs import records
from ..jobs.records import JobRecord
from .db import connect

State = Literal["queued", "running", "done"]
_FINISH = ("UPDATE jobs SET state = 'done', record = ?,"
           " webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END WHERE id = ?")
INTERRUPTED = "the server stopped while this job was running; submit it again"


@dataclass
class ServerJob:
    record: JobRecord
    form_state: dict
    base_url: str  # where the submitter reached us: `output` URLs are built on it
    uploads: dict[str, str] = field(default_factory=dict)
    webhook: Optional[str] = None
    webhook_state: Optional[str] = None  # pending | delivered | failed
    key_id: Optional[str] = None
    state: State = "queued"
    created: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.record.id


def _job(row) -> ServerJob:
    return ServerJob(record=JobRecord.model_validate_json(row["record"]), form_state=json.loads(row["form_state"]),
                     base_url=row["base_url"], uploads=json.loads(row["uploads"]), webhook=row["webhook"],
                     webhook_state=row["webhook_state"], key_id=row["key_id"], state=row["state"],
                     created=row["created"])


class JobStore:
    def __init__(self, home: Path):
        self.home = home

    def add(self, job: ServerJob) -> None:
        with connect(self.home) as conn:
            conn.execute(
                "INSERT INTO jobs (id, model, state, record, form_state, uploads, webhook, webhook_state, key_id,"
                " base_url, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.record.model, job.state, job.record.model_dump_json(), json.dumps(job.form_state),
                 json.dumps(job.uploads), job.webhook, job.webhook_state, job.key_id, job.base_url, job.created))

    def get(self, job_id: str) -> Optional[ServerJob]:
        with connect(self.home) as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def claim_next(self) -> Optional[ServerJob]:
        """Mark the oldest queued job running and return it (atomic, so two workers never share one)."""
        with connect(self.home) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is not None:
                conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (row["id"],))
            conn.execute("COMMIT")
        if row is None:
            return None
        job = _job(row)
        job.state = "running"
        return job

    def finish(self, record: JobRecord) -> None:
        """Store the final record; a webhook, if any, becomes due."""
        with connect(self.home) as conn:
            conn.execute(_FINISH, (record.model_dump_json(), record.id))
        self._save_json(record)

    def requeue(self, job_id: str) -> None:
        with connect(self.home) as conn:
            conn.execute("UPDATE jobs SET state = 'queued' WHERE id = ? AND state = 'running'", (job_id,))

    def fail_interrupted(self) -> list[str]:
        """At start-up: jobs still marked running were cut off by a crash or kill; fail them with a reason."""
        failed = []
        with connect(self.home) as conn:
            for row in conn.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall():
                record = JobRecord.model_validate_json(row["record"])
                record.status, record.error, record.output = "failed", INTERRUPTED, None
                conn.execute(_FINISH, (record.model_dump_json(), record.id))
                self._save_json(record)
                failed.append(record.id)
        return failed

    def _save_json(self, record: JobRecord) -> None:
        """Also keep the record where local jobs live (LIPSYNC_HOME/jobs), so the UI's history shows it."""
        folder = self.home / "jobs"
        folder.mkdir(parents=True, exist_ok=True)
        records.save(record, folder)

    def set_webhook_state(self, job_id: str, state: str) -> None:
        with connect(self.home) as conn:
            conn.execute("UPDATE jobs SET webhook_state = ? WHERE id = ?", (state, job_id))

    def pending_webhooks(self) -> list[ServerJob]:
        with connect(self.home) as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'done' AND webhook_state = 'pending'"
                                " ORDER BY created").fetchall()
        return [_job(row) for row in rows]

    def has_queued(self) -> bool:
        with connect(self.home) as conn:
            return conn.execute("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1").fetchone() is not None
