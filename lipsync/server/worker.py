"""The job queue: worker threads take queued jobs from SQLite, fetch their media, render, store the
result and send the webhook. One job at a time by default (a render already uses every core).

Each webhook delivery has its own thread (up to `MAX_DELIVERIES` at once), so a receiver that never
answers holds up only its own deliveries."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from .. import config, kinds
from ..errors import EngineError, InputError, LipsyncError
from ..media.fetch import resolve
from ..requests import Request, parse_request
from . import keys, webhooks
from .db import server_secret
from .links import public_job
from .settings import ServerSettings
from .store import JobStore, ServerJob

log = logging.getLogger(__name__)
MEDIA_FIELDS = kinds.MEDIA_FIELDS
REVOKED = "the API key that submitted this job was revoked"
MAX_DELIVERIES = 64
STALE_PART = 3600.0  # seconds: a partial output nobody has written to for this long is left from a crash


def work_dir(home: Path, job_id: str) -> Path:
    """Downloads and scratch files of a running job (made by `_run`, 0700)."""
    return home / "server" / "work" / job_id


def upload_dir(home: Path, job_id: str) -> Path:
    return home / "server" / "uploads" / job_id


def _render_entry():
    """`run_job`, imported with the first job rather than at server start (start-up stays light). A broken
    install (say, OpenCV without a system library it needs) fails that job with the reason."""
    try:
        from ..jobs import run_job
    except ImportError as exc:
        raise EngineError(f"the render engine could not be loaded ({exc}); reinstall Lipsync Studio") from exc
    return run_job


class JobQueue:
    """Owns the worker threads and webhook deliveries of one app; `start()`/`stop()` follow its lifespan."""

    def __init__(self, store: JobStore, settings: ServerSettings):
        self.store = store
        self.settings = settings
        self.home = store.home
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deliveries = threading.BoundedSemaphore(MAX_DELIVERIES)
        self._accepting = False

    def start(self) -> None:
        for job_id in self.store.fail_interrupted():
            log.warning("job %s was running when the server stopped: marked failed", job_id)
        self.clean_leftovers()
        self.start_webhooks()
        self._threads = [threading.Thread(target=self._loop, name=f"lipsync-worker-{n}", daemon=True)
                         for n in range(self.settings.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel running renders (they go back to the queue and resume at the next start)."""
        deadline = time.monotonic() + timeout
        self.stop_webhooks()
        self._wake.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def start_webhooks(self) -> None:
        """Accept deliveries, and send those left pending by the last run."""
        self._stop.clear()
        self._accepting = True
        for job in self.store.pending_webhooks():
            self.send_webhook(job)

    def stop_webhooks(self) -> None:
        self._stop.set()
        self._accepting = False  # deliveries not yet sent stay pending and go out at the next start

    def unavailable(self) -> Optional[str]:
        """Why new submissions cannot be taken now (answered 503), or None. Threads are always there."""
        return None

    def submitted(self, job: ServerJob) -> None:
        """A new job is in the store: wake a worker thread."""
        self.notify()

    def clean_leftovers(self, live: tuple[str, ...] = ("queued",)) -> None:
        """At start-up, before any worker runs: what a killed process left behind. Downloads and scratch
        files of jobs (server/work), uploads of jobs not in a `live` state, and partial outputs of server
        jobs (or any nobody has touched for an hour: the UI and CLI write there too)."""
        states = self.store.states()
        shutil.rmtree(self.home / "server" / "work", ignore_errors=True)
        uploads = self.home / "server" / "uploads"
        for folder in uploads.glob("*") if uploads.is_dir() else ():
            if states.get(folder.name) not in live:
                shutil.rmtree(folder, ignore_errors=True)
        outputs = self.home / "outputs"
        for part in outputs.glob(".*.part.mp4") if outputs.is_dir() else ():
            job_id = part.name.split(".")[1]
            try:
                stale = time.time() - part.stat().st_mtime > STALE_PART
            except OSError:
                continue
            if job_id in states or stale:
                part.unlink(missing_ok=True)

    def notify(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next()
            except Exception as exc:  # noqa: BLE001 - the database is busy or damaged: say so, try again
                log.error("job queue: cannot read the next job (%s)", exc)
                self._stop.wait(5.0)
                continue
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - keep the worker alive; the job stays visible as failed
                log.exception("job %s: worker error", job.id)
                job.record.status, job.record.error = "failed", "internal error in the job queue"
                try:
                    self.store.finish(job.record)
                except Exception as exc:  # noqa: BLE001
                    log.error("job %s: cannot store its failure (%s)", job.id, exc)

    def _run(self, job: ServerJob) -> None:
        record = job.record
        workdir = work_dir(self.home, job.id)
        started = time.perf_counter()
        try:
            if job.key_id and keys.get_key(job.key_id, home=self.home) is None:
                raise LipsyncError(REVOKED)
            run_job = _render_entry()
            request = self._fetch_media(job, config.private_dir(workdir))
        except LipsyncError as exc:
            record.status, record.error = "failed", str(exc)
            record.executionTime = round((time.perf_counter() - started) * 1000)
        else:
            fetch_ms = round((time.perf_counter() - started) * 1000)
            outputs = config.private_dir(self.home / "outputs")
            record = run_job(request, out_path=outputs / f"{job.id}.mp4", cancel=self._stop.is_set, record=record)
            if self._stop.is_set() and record.status == "failed":
                # Shut down mid-render: resume at the next start rather than report a failure.
                self.store.requeue(job.id)
                shutil.rmtree(workdir, ignore_errors=True)
                return
            # Downloading the inputs is part of the job, as it is for the hosted API.
            record.executionTime = (record.executionTime or 0) + fetch_ms
            if record.status == "completed":
                record.timings["decode"] = record.timings.get("decode", 0) + fetch_ms
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(upload_dir(self.home, job.id), ignore_errors=True)
        job.record = record
        self.store.finish(record)
        if job.webhook:
            self.send_webhook(job)

    def _fetch_media(self, job: ServerJob, workdir: Path) -> Request:
        """Download URL inputs under the server's limits; uploaded files are already local."""
        form = dict(job.form_state)
        for field in MEDIA_FIELDS:
            value = form.get(field)
            if not value:
                continue
            if field in job.uploads:
                form[field] = job.uploads[field]
                continue
            if urlsplit(str(value)).scheme not in ("http", "https"):
                raise InputError(field, "must be an http(s) URL or an uploaded file")
            form[field] = str(resolve(str(value), field, workdir, max_bytes=self.settings.max_media_bytes,
                                      timeout=self.settings.fetch_timeout,
                                      allow_private=self.settings.allow_private_urls))
        return parse_request(job.record.model, form)

    def send_webhook(self, job: ServerJob) -> None:
        if self._accepting:  # else: not started or shutting down; the delivery stays pending
            threading.Thread(target=self._deliver, args=(job,), name=f"lipsync-webhook-{job.id[:8]}",
                             daemon=True).start()

    def _deliver(self, job: ServerJob) -> None:
        with self._deliveries:
            if not self._stop.is_set():
                self._deliver_now(job)

    def _deliver_now(self, job: ServerJob) -> None:
        key = keys.get_key(job.key_id, home=self.home) if job.key_id else None
        if key is None:  # never unsigned: the receiver could not tell it from a forgery
            log.warning("webhook for job %s not sent: %s", job.id, REVOKED.replace("this job", "it"))
            self.store.set_webhook_state(job.id, "failed")
            return
        base = self.settings.public_url or job.base_url
        payload = public_job(job, base, server_secret(self.home), self.settings.link_ttl)
        ok = webhooks.deliver(job.webhook, payload, key.webhook_secret,
                              attempts=self.settings.webhook_attempts, backoff=self.settings.webhook_backoff,
                              timeout=self.settings.webhook_timeout, allow_private=self.settings.allow_private_urls,
                              stop=self._stop)
        if ok:
            self.store.set_webhook_state(job.id, "delivered")
        elif not self._stop.is_set():
            log.warning("webhook for job %s: giving up after %d attempts", job.id, self.settings.webhook_attempts)
            self.store.set_webhook_state(job.id, "failed")
