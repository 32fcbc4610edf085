"""The server side of Celery workers: publish each job as a task, watch the broker, take results once.

The SQLite store stays the one source of truth for jobs. The broker only carries "render job X" messages,
so a broker that loses its data (Redis restarted without persistence) loses nothing: the server notices
(a marker key it set is gone), and publishes its queued jobs again. Each publication has a new task id,
and a worker may claim a job only with the job's current task id: a stale copy of a message is dropped.
A delivery of the same task again (its worker was lost) may claim it again, up to `max_attempts` times.

The first result for a job wins (an atomic flag in SQLite); any later one is answered "not kept", so a
job never has two outputs and its webhook goes out once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

from .. import config
from ..errors import InputError
from ..jobs.records import JobRecord
from ..server import keys
from ..server.db import connect, server_secret
from ..server.errors import ApiError
from ..server.settings import ServerSettings
from ..server.store import JobStore, ServerJob
from ..server.worker import MEDIA_FIELDS, REVOKED, JobQueue, upload_dir
from .celery_app import create_celery
from .settings import TASK_NAME, BrokerSettings, queue_for

log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS celery_jobs (
    job_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,          -- the current publication; older copies of the message are refused
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,                    -- the last worker that claimed it
    finished INTEGER NOT NULL DEFAULT 0
);
"""
TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LOST = "the workers rendering this job were lost {n} times (killed or out of memory); it was not retried again"


def job_token(secret: str, job_id: str) -> str:
    """What a worker shows to read this job's inputs and send its result; it opens no other job."""
    return hmac.new(secret.encode(), f"worker-job:{job_id}".encode(), hashlib.sha256).hexdigest()


def broker_address(url: str) -> str:
    """The broker for messages: scheme, host and port, never a password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}"


@contextmanager
def _db(home: Path) -> Iterator:
    with connect(home) as conn:
        conn.executescript(SCHEMA)
        yield conn


class CeleryQueue(JobQueue):
    """Same contract as the thread queue (start, stop, submitted, unavailable); renders run on workers."""

    def __init__(self, store: JobStore, settings: ServerSettings, broker: BrokerSettings):
        super().__init__(store, settings)
        if not broker.url or urlsplit(broker.url).scheme not in ("redis", "rediss"):
            raise InputError("LIPSYNC_BROKER_URL", "must be a redis:// or rediss:// URL")
        import redis

        self.broker = broker
        self.celery = create_celery(broker)
        self.secret = server_secret(self.home)
        self.where = broker_address(broker.url)
        self._redis = redis.Redis.from_url(broker.url, socket_connect_timeout=broker.check_timeout,
                                           socket_timeout=broker.check_timeout)
        # Set once per broker data set; its absence means the broker's queues are gone too.
        self._marker = f"lipsync:server:{hashlib.sha256(self.secret.encode()).hexdigest()[:16]}"
        self._check_lock = threading.Lock()
        self._resync = threading.Event()  # publish every queued job at the next successful check
        self._down: Optional[str] = None
        self._watch_stop = threading.Event()
        self._watcher: Optional[threading.Thread] = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        # Jobs marked running may still be rendering on workers: they are neither failed nor cleaned.
        self.clean_leftovers(live=("queued", "running"))
        self.start_webhooks()
        self._resync.set()  # whatever was queued when the server stopped goes (back) to the broker
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="lipsync-broker-watch", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._watch_stop.set()
        if self._watcher:
            self._watcher.join(timeout)
        self.stop_webhooks()
        self.celery.close()
        self._redis.close()

    def _watch(self) -> None:
        while not self._watch_stop.is_set():
            self.check_broker()
            self._watch_stop.wait(self.broker.watch_interval)

    # -- the broker -----------------------------------------------------------------------------------

    def check_broker(self) -> Optional[str]:
        """None if the broker answers (re-publishing queued jobs if it lost them), else why not."""
        import redis

        with self._check_lock:
            try:
                fresh = bool(self._redis.set(self._marker, "1", nx=True))
            except redis.RedisError as exc:
                if self._down is None:
                    log.error("job broker %s is unreachable (%s): new submissions get 503", self.where, exc)
                self._down = f"the job broker ({self.where}) is unreachable; try again later"
                return self._down
            if self._down is not None:
                log.warning("job broker %s is back", self.where)
            self._down = None
            if fresh or self._resync.is_set():
                self._resync.clear()
                self._publish_queued(lost=fresh)
            return None

    def unavailable(self) -> Optional[str]:
        return self.check_broker()

    def _publish_queued(self, *, lost: bool) -> None:
        with connect(self.home) as conn:
            ids = [row["id"] for row in conn.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created")]
        if ids:
            log.warning("publishing %d queued job(s) to %s%s", len(ids), self.where,
                        " (the broker's data is new: it restarted without persistence, or is a new one)" if lost else "")
        for job_id in ids:
            job = self.store.get(job_id)
            if job is None or job.state != "queued":
                continue
            if not self._publish(job):
                self._resync.set()
                return

    def _publish(self, job: ServerJob) -> bool:
        task_id = str(uuid.uuid4())
        with _db(self.home) as conn:
            conn.execute("INSERT INTO celery_jobs (job_id, task_id) VALUES (?, ?)"
                         " ON CONFLICT(job_id) DO UPDATE SET task_id = excluded.task_id", (job.id, task_id))
        server = self.broker.server_url or self.settings.public_url or job.base_url
        try:
            self.celery.send_task(TASK_NAME, args=[job.id, server, job_token(self.secret, job.id)], task_id=task_id,
                                  queue=queue_for(job.record.request.get("engine")), retry=True,
                                  retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                                "interval_max": 0.2})
        except Exception as exc:  # noqa: BLE001 - any broker error: the job stays queued in SQLite
            log.warning("job %s: not published to %s yet (%s); it will be when the broker answers",
                        job.id, self.where, type(exc).__name__)
            return False
        return True

    def submitted(self, job: ServerJob) -> None:
        if not self._publish(job):
            self._resync.set()

    # -- what workers call (routes.py) ----------------------------------------------------------------

    def token_ok(self, job_id: str, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), job_token(self.secret, job_id).encode())

    def claim(self, job_id: str, task_id: str, worker: str) -> dict:
        """What the worker needs to render the job; 409 when this delivery should not render it."""
        job = self.store.get(job_id)
        if job is None or job.broken:
            raise ApiError(404, f"job {job_id} not found")
        with _db(self.home) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT * FROM celery_jobs WHERE job_id = ?", (job_id,)).fetchone()
            state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()["state"]
            problem = ("the job is already finished" if state == "done" or (row and row["finished"]) else
                       "this delivery was superseded: the job was queued again" if row is None or row["task_id"] != task_id
                       else None)
            attempts = (row["attempts"] if row else 0) + 1
            if problem is None:
                conn.execute("UPDATE celery_jobs SET attempts = ?, worker = ? WHERE job_id = ?", (attempts, worker, job_id))
                if attempts <= self.broker.max_attempts:
                    conn.execute("UPDATE jobs SET state = 'running' WHERE id = ? AND state = 'queued'", (job_id,))
            conn.execute("COMMIT")
        if problem:
            raise ApiError(409, problem)
        if attempts > self.broker.max_attempts:
            self._fail(job, LOST.format(n=attempts - 1))
            raise ApiError(409, "the job failed: its workers were lost too often")
        if job.key_id and keys.get_key(job.key_id, home=self.home) is None:
            self._fail(job, REVOKED)
            raise ApiError(409, REVOKED)
        log.info("job %s: claimed by %s (attempt %d)", job_id, worker, attempts)
        uploads = {field: Path(path).name for field, path in job.uploads.items()}
        url_fields = [f for f in MEDIA_FIELDS if f not in uploads and isinstance(job.form_state.get(f), str)
                      and job.form_state[f].strip()]
        return {"model": job.record.model, "request": job.record.request, "form_state": job.form_state,
                "uploads": uploads, "url_fields": url_fields,
                "limits": {"max_bytes": self.settings.max_media_bytes, "fetch_timeout": self.settings.fetch_timeout,
                           "allow_private": self.settings.allow_private_urls}}

    def upload_path(self, job_id: str, field: str) -> Path:
        job = self.store.get(job_id)
        path = Path(job.uploads[field]) if job and field in job.uploads else None
        if path is None or job.state == "done" or not path.is_file():
            raise ApiError(404, "file not found")
        return path

    def part_path(self, job_id: str, task_id: str) -> Path:
        """Where this delivery's output is uploaded to; 409 once the job is finished."""
        if not TASK_ID.fullmatch(task_id):
            raise ApiError(400, "task_id: is not a task id", "task_id")
        job = self.store.get(job_id)
        if job is None:
            raise ApiError(404, f"job {job_id} not found")
        if job.state == "done":
            raise ApiError(409, "the job is already finished")
        # `.<job id>.*.part.mp4`: what the start-up clean-up recognises as a partial output.
        return config.private_dir(self.home / "outputs") / f".{job_id}.{task_id[:8]}.part.mp4"

    def accept_result(self, job_id: str, task_id: str, worker: str, data: dict) -> bool:
        """Store the worker's record (and move its uploaded output in place) unless the job is already
        finished; then send the webhook. True if kept."""
        job = self.store.get(job_id)
        if job is None:
            raise ApiError(404, f"job {job_id} not found")
        if job.state == "done":
            return False  # another delivery finished it: this result is not kept
        part = self.part_path(job_id, task_id)
        try:
            sent = JobRecord.model_validate(data)
        except ValueError:
            raise ApiError(400, "record: is not a job record", "record") from None
        if sent.status == "completed" and not part.is_file():
            raise ApiError(400, "output: upload the output (PUT .../output) before the record", "output")
        if not self._finish_first(job_id):
            part.unlink(missing_ok=True)
            return False
        record = sent.model_copy(update={
            "id": job.id, "model": job.record.model, "createdAt": job.record.createdAt, "session": job.record.session,
            "request": {**job.record.request, **({"seed": sent.request["seed"]} if "seed" in sent.request else {})},
            "worker": worker[:200], "output": None})
        if record.status == "completed":
            final = part.with_name(f"{job.id}.mp4")
            os.replace(part, final)
            record.output = str(final)
        self._store_final(job, record)
        log.info("job %s: %s on %s", job.id, record.status, record.worker)
        return True

    # -- finishing ------------------------------------------------------------------------------------

    def _finish_first(self, job_id: str) -> bool:
        """Atomically mark the job finished; True for the one caller that did."""
        with _db(self.home) as conn:
            return conn.execute("UPDATE celery_jobs SET finished = 1 WHERE job_id = ? AND finished = 0",
                                (job_id,)).rowcount == 1

    def _fail(self, job: ServerJob, reason: str) -> None:
        if self._finish_first(job.id):
            record = job.record.model_copy(update={"status": "failed", "error": reason, "output": None})
            self._store_final(job, record)

    def _store_final(self, job: ServerJob, record: JobRecord) -> None:
        self.store.finish(record)
        shutil.rmtree(upload_dir(self.home, job.id), ignore_errors=True)
        outputs = self.home / "outputs"
        for part in outputs.glob(f".{job.id}.*.part.mp4"):
            part.unlink(missing_ok=True)
        done = self.store.get(job.id)
        if done is not None and done.webhook:
            self.send_webhook(done)
