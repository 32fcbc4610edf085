"""Jobs of the REST API in SQLite, so a restart loses none.

A job goes queued → running → done. Its public face is a `JobRecord` (the hosted job object); the row
also keeps what the worker needs: the formState, uploaded files, the webhook and who submitted it.

A row that cannot be read back (edited by hand, written by another version, a damaged page) becomes a
failed job with the reason: it never stops the queue or the start-up.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from .. import config
from ..jobs import records
from ..jobs.records import JobRecord
from .db import connect

log = logging.getLogger(__name__)
State = Literal["queued", "running", "done"]
_FINISH = ("UPDATE jobs SET state = 'done', record = ?,"
           " webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END WHERE id = ?")
INTERRUPTED = "the server stopped while this job was running; submit it again"
UNREADABLE = "this job's stored record could not be read back (server.db was changed or damaged); submit it again"


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
    broken: bool = False  # the row could not be read back: only id, key and webhook are known

    @property
    def id(self) -> str:
        return self.record.id


def _text(value) -> Optional[str]:
    return value if isinstance(value, str) else None


def _job(row) -> ServerJob:
    try:
        form_state, uploads = json.loads(row["form_state"]), json.loads(row["uploads"])
        if not isinstance(form_state, dict) or not isinstance(uploads, dict) \
                or not all(isinstance(v, str) for v in uploads.values()):
            raise ValueError("formState or uploads is not an object of strings")
        job = ServerJob(record=JobRecord.model_validate_json(row["record"]), form_state=form_state,
                        base_url=str(row["base_url"]), uploads=uploads, webhook=_text(row["webhook"]),
                        webhook_state=_text(row["webhook_state"]), key_id=_text(row["key_id"]), state=row["state"],
                        created=float(row["created"]))
        if job.record.id != row["id"] or job.state not in ("queued", "running", "done"):
            raise ValueError("the record does not match its row")
        return job
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        log.warning("job %s: stored row is unreadable (%s)", row["id"], str(exc).splitlines()[0])
        record = JobRecord(id=str(row["id"]), model=_text(row["model"]) or "unknown", status="failed",
                           error=UNREADABLE)
        return ServerJob(record=record, form_state={}, base_url="", webhook=_text(row["webhook"]),
                         webhook_state=_text(row["webhook_state"]), key_id=_text(row["key_id"]),
                         state=row["state"] if row["state"] in ("queued", "running", "done") else "done",
                         broken=True)


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

    def was_deleted(self, job: ServerJob) -> bool:
        """A finished job deleted since (from the UI's History): its record file, or its output, is gone."""
        if job.state != "done" or job.broken:
            return False
        if not (self.home / "jobs" / f"{job.id}.json").is_file():
            return True
        return job.record.status == "completed" and not (job.record.output and Path(job.record.output).is_file())

    def claim_next(self) -> Optional[ServerJob]:
        """Mark the oldest queued job running and return it (atomic, so two workers never share one).
        An unreadable row is failed on the spot, with the reason, and the next one taken."""
        while True:
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
            if not job.broken:
                return job
            self.finish(job.record)

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
        with connect(self.home) as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
        failed = []
        for row in rows:
            job = _job(row)
            record = job.record
            record.status, record.output = "failed", None
            record.error = UNREADABLE if job.broken else INTERRUPTED
            self.finish(record)
            failed.append(record.id)
        return failed

    def _save_json(self, record: JobRecord) -> None:
        """Also keep the record where local jobs live (LIPSYNC_HOME/jobs), so the UI's history shows it."""
        records.save(record, config.private_dir(self.home / "jobs"))

    def set_webhook_state(self, job_id: str, state: str) -> None:
        with connect(self.home) as conn:
            conn.execute("UPDATE jobs SET webhook_state = ? WHERE id = ?", (state, job_id))

    def pending_webhooks(self) -> list[ServerJob]:
        with connect(self.home) as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'done' AND webhook_state = 'pending'"
                                " ORDER BY created").fetchall()
        return [_job(row) for row in rows]

    def states(self) -> dict[str, str]:
        """Every job's state by id (start-up clean-up)."""
        with connect(self.home) as conn:
            return {str(row["id"]): str(row["state"]) for row in conn.execute("SELECT id, state FROM jobs")}
