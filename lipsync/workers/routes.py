"""The endpoints workers call, under /api/v1/worker/jobs/{id}; each needs that job's token (dispatch.job_token).

    POST /claim                {task_id, worker} → what to render (409: nothing to do for this delivery)
    GET  /inputs/{field}       an uploaded input
    PUT  /output?task_id=...   the rendered MP4 (raw body, streamed to a partial file)
    POST /result               {task_id, worker, record} → {"accepted": bool} (false: already finished)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..server.errors import ApiError
from ..server.throttle import AuthThrottle
from .dispatch import CeleryQueue
from .settings import WORKER_PATH

MAX_OUTPUT_BYTES = 8 << 30


class Claim(BaseModel):
    task_id: str = Field(max_length=64)
    worker: str = Field(min_length=1, max_length=200)


class Result(Claim):
    record: dict


def worker_router(queue: CeleryQueue, throttle: AuthThrottle) -> APIRouter:
    router = APIRouter(prefix=WORKER_PATH, include_in_schema=False)

    def authorize(request: Request, job_id: str) -> None:
        """The job's token, under the same throttle as API keys (a wrong token counts as a failure)."""
        client = request.client.host if request.client else "unknown"
        retry = throttle.retry_after(client)
        if retry is not None:
            raise ApiError(429, f"too many failed attempts from this address; retry in {retry} s",
                           headers={"Retry-After": str(retry)})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not queue.token_ok(job_id, token.strip()):
            throttle.failed(client)
            raise ApiError(401, "missing or invalid job token")

    @router.post("/jobs/{job_id}/claim")
    def claim(job_id: str, body: Claim, request: Request) -> dict:
        authorize(request, job_id)
        return queue.claim(job_id, body.task_id, body.worker)

    @router.get("/jobs/{job_id}/inputs/{field}")
    def input_file(job_id: str, field: str, request: Request):
        authorize(request, job_id)
        return FileResponse(queue.upload_path(job_id, field), media_type="application/octet-stream")

    @router.put("/jobs/{job_id}/output")
    async def output(job_id: str, task_id: str, request: Request) -> dict:
        authorize(request, job_id)
        part = await run_in_threadpool(queue.part_path, job_id, task_id)
        tmp = part.with_name(part.name.replace(".part.mp4", ".upload.part.mp4"))
        size = 0
        try:
            with tmp.open("wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_OUTPUT_BYTES:
                        raise ApiError(413, f"output: larger than {MAX_OUTPUT_BYTES >> 30} GB", "output")
                    f.write(chunk)
            tmp.replace(part)  # complete or absent: a cut-off upload never passes for an output
        finally:
            tmp.unlink(missing_ok=True)
        return {"bytes": size}

    @router.post("/jobs/{job_id}/result")
    def result(job_id: str, body: Result, request: Request) -> dict:
        authorize(request, job_id)
        return {"accepted": queue.accept_result(job_id, body.task_id, body.worker, body.record)}

    return router
