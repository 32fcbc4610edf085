"""What a worker does with one task: claim the job from the server, fetch its inputs, render, send back
the output and the record. Nothing stays on the worker: each job has its own scratch folder, removed after.

Bad input fails the job once (the record says why and the server keeps it); only an unreachable server
makes the task wait and try again, since the job itself is fine."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path
from typing import Optional

import httpx

from ..errors import LipsyncError
from .settings import WORKER_PATH

log = logging.getLogger(__name__)
CLAIM_RETRY = 5.0  # seconds between claims while the server cannot be reached
CLAIM_ATTEMPTS = 120  # ten minutes; then the task ends, and the server re-enqueues the job when it starts
RESULT_PATIENCE = 1800.0  # seconds a finished render waits for the server to take its result
CHUNK = 1 << 20


class ServerUnreachable(Exception):
    """The server did not answer, or answered 5xx: the job is fine, try later."""


class ServerLink:
    """The HTTP calls of one job, authenticated by the job's token (it opens this job and no other)."""

    def __init__(self, server_url: str, job_id: str, token: str, timeout: float = 30.0):
        self.base = f"{server_url.rstrip('/')}{WORKER_PATH}/jobs/{job_id}"
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise ServerUnreachable(f"HTTP {response.status_code}")
        return response

    def claim(self, task_id: str, worker: str) -> Optional[dict]:
        """What the job needs, or None when there is nothing to do (finished, superseded, unknown)."""
        response = self._call("POST", "/claim", json={"task_id": task_id, "worker": worker})
        if response.status_code == 200:
            return response.json()
        log.info("job %s: not rendered here (%s)", self.base.rsplit("/", 1)[-1], _error(response))
        return None

    def download(self, field: str, dest: Path, max_bytes: int) -> Path:
        try:
            with self.client.stream("GET", f"{self.base}/inputs/{field}") as response:
                if response.status_code != 200:
                    raise ServerUnreachable(f"input {field}: HTTP {response.status_code}")
                size = 0
                with dest.open("wb") as f:
                    for chunk in response.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ServerUnreachable(f"input {field} is larger than the server said")
                        f.write(chunk)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from None
        return dest

    def send_result(self, task_id: str, worker: str, record: dict, output: Optional[Path]) -> bool:
        """Upload the output (if any), then the record. True if the server kept this result; False if the
        job was already finished by another delivery."""
        if output is not None:
            with output.open("rb") as f:
                response = self._call("PUT", "/output", params={"task_id": task_id}, content=_chunks(f))
            if response.status_code != 200:  # 409: another delivery finished the job first
                log.warning("job output refused: %s", _error(response))
                return False
        response = self._call("POST", "/result", json={"task_id": task_id, "worker": worker, "record": record})
        if response.status_code != 200:
            log.warning("job result refused: %s", _error(response))
            return False
        return bool(response.json().get("accepted"))


def _chunks(f):
    while chunk := f.read(CHUNK):
        yield chunk


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.status_code))
    except ValueError:
        return f"HTTP {response.status_code}"


def fetch_inputs(claim: dict, workdir: Path, link: ServerLink) -> dict:
    """formState with every media field a local file: uploads come from the server, URLs from where they
    point, under the server's limits and address rules."""
    from ..media.fetch import resolve

    limits = claim["limits"]
    form = dict(claim["form_state"])
    for field, name in claim["uploads"].items():
        form[field] = str(link.download(field, workdir / f"{field}-{Path(name).name}", limits["max_bytes"]))
    for field in claim["url_fields"]:
        form[field] = str(resolve(str(form[field]), field, workdir, max_bytes=limits["max_bytes"],
                                  timeout=limits["fetch_timeout"], allow_private=limits["allow_private"]))
    return form


def render_claim(claim: dict, job_id: str, workdir: Path, link: ServerLink):
    """The finished record (completed or failed) and the output file, if any."""
    from ..jobs.records import JobRecord
    from ..requests import parse_request

    record = JobRecord(id=job_id, model=claim["model"], request=claim["request"])
    started = time.perf_counter()
    try:
        from ..jobs import run_job  # the render stack loads with the first job, as on the server

        request = parse_request(claim["model"], fetch_inputs(claim, workdir, link))
    except LipsyncError as exc:
        record.status, record.error = "failed", str(exc)
        record.executionTime = round((time.perf_counter() - started) * 1000)
        return record, None
    except ImportError as exc:
        record.status, record.error = "failed", f"the render engine could not be loaded on this worker ({exc})"
        return record, None
    fetch_ms = round((time.perf_counter() - started) * 1000)
    out = workdir / f"{job_id}.mp4"
    record = run_job(request, out_path=out, record=record, records_dir=workdir)
    # Downloading the inputs is part of the job, as it is on the server's own queue.
    record.executionTime = (record.executionTime or 0) + fetch_ms
    if record.status != "completed":
        return record, None
    record.timings["decode"] = record.timings.get("decode", 0) + fetch_ms
    return record, out


def run_task(task, job_id: str, server_url: str, token: str) -> str:
    """The body of the `lipsync.render` Celery task."""
    worker = task.request.hostname or socket.gethostname()
    link = ServerLink(server_url, job_id, token)
    try:
        try:
            claim = link.claim(task.request.id, worker)
        except ServerUnreachable as exc:
            log.warning("job %s: server unreachable (%s); trying again in %g s", job_id, exc, CLAIM_RETRY)
            raise task.retry(countdown=CLAIM_RETRY, max_retries=CLAIM_ATTEMPTS) from None
        if claim is None:
            return "skipped"
        with tempfile.TemporaryDirectory(prefix=f"lipsync-{job_id[:8]}-") as tmp:
            try:
                record, output = render_claim(claim, job_id, Path(tmp), link)
            except ServerUnreachable as exc:  # an uploaded input could not be read: the job goes back
                log.warning("job %s: %s; trying again in %g s", job_id, exc, CLAIM_RETRY)
                raise task.retry(countdown=CLAIM_RETRY, max_retries=CLAIM_ATTEMPTS) from None
            deliver_result(link, task.request.id, worker, record.model_dump(mode="json"), output)
        return record.status
    finally:
        link.close()


def deliver_result(link: ServerLink, task_id: str, worker: str, record: dict, output: Optional[Path]) -> None:
    """Send the result, waiting out a server restart (the render is not redone for it)."""
    deadline = time.monotonic() + RESULT_PATIENCE
    delay = 1.0
    while True:
        try:
            kept = link.send_result(task_id, worker, record, output)
            log.info("job %s: %s (%s)", record["id"], record["status"], "kept" if kept else "already finished")
            return
        except ServerUnreachable as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("job %s: cannot send the result (%s); trying again in %g s", record["id"], exc, delay)
            time.sleep(delay)
            delay = min(30.0, delay * 2)
