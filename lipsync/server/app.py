"""The local REST API, field for field the hosted one.

    POST /api/v1/lipsync-video | lipsync-image | lipsync-image-multi   {"webhook"?, "formState": {...}}
         → {"id": "<uuid>", "status": "processing"}
    GET  /api/v1/jobs/{id} → {id, model, status, output, error, executionTime, timings}

Every request needs ``Authorization: Bearer sk_...``. Media fields take http(s) URLs; a multipart body
may carry the files themselves (parts named after the fields, plus ``formState`` as JSON text).
"""

from __future__ import annotations

import hmac
import json
import logging
import shutil
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import config
from ..errors import InputError
from ..jobs.records import JobRecord
from ..media.fetch import check_public  # the same address rules the download applies
from ..requests import parse_request
from . import keys
from .db import server_secret
from .links import API_PREFIX, file_signature, public_job, shared_file
from .settings import ServerSettings
from .store import JobStore, ServerJob
from .webhooks import check_webhook_url
from .worker import MEDIA_FIELDS, JobQueue, upload_dir

log = logging.getLogger(__name__)
MODELS = ("lipsync-video", "lipsync-image", "lipsync-image-multi")
MAX_JSON_BYTES = 1 << 20
_CHUNK = 1 << 20


class ApiError(Exception):
    """An HTTP error with a JSON body: {"error": message, "field"?: name}."""

    def __init__(self, status: int, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _error_body(message: str, field: Optional[str] = None) -> dict:
    return {"error": message, **({"field": field} if field else {})}


def create_app(settings: Optional[ServerSettings] = None, *, home: Optional[Path] = None) -> FastAPI:
    """The API app; its lifespan starts and stops the job queue. Mount the UI on it at "/"."""
    settings = settings or ServerSettings.from_env()
    home = Path(home) if home else config.home()
    store = JobStore(home)
    queue = JobQueue(store, settings)
    secret = server_secret(home)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(queue.stop)

    # The schema and its docs page sit outside /api/v1, where every request needs a key.
    app = FastAPI(title="Lipsync Studio API", version="1", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.store, app.state.queue, app.state.settings, app.state.home = store, queue, settings, home

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(_error_body(exc.message, exc.field), status_code=exc.status, headers=headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse(_error_body(str(exc), exc.field), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse(_error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    def base_url(request: Request) -> str:
        return settings.public_url or str(request.base_url).rstrip("/")

    def require_key(request: Request) -> keys.KeyInfo:
        info = keys.verify_key(_bearer(request), home=home)
        if info is None:
            raise ApiError(401, "missing or invalid API key: send Authorization: Bearer sk_...")
        return info

    api = APIRouter(prefix=API_PREFIX)

    def submit_route(model: str):
        async def submit(request: Request, key: keys.KeyInfo = Depends(require_key)) -> dict:
            job_id = str(uuid.uuid4())
            try:
                form_state, webhook, uploads = await _read_body(request, job_id, home, settings.max_media_bytes)
                job = await run_in_threadpool(_new_job, model, job_id, form_state, webhook, uploads, key,
                                              base_url(request), settings)
                await run_in_threadpool(store.add, job)
            except BaseException:
                shutil.rmtree(upload_dir(home, job_id), ignore_errors=True)
                raise
            queue.notify()
            return {"id": job.id, "status": "processing"}

        submit.__name__ = f"submit_{model.replace('-', '_')}"
        return submit

    for model in MODELS:
        api.add_api_route(f"/{model}", submit_route(model), methods=["POST"], summary=f"Submit a {model} job")

    @api.get("/jobs/{job_id}", summary="Job status and result")
    def get_job(job_id: str, request: Request, key: keys.KeyInfo = Depends(require_key)) -> dict:
        job = store.get(job_id)
        if job is None:
            raise ApiError(404, f"job {job_id} not found")
        return public_job(job, base_url(request), secret)

    app.include_router(api)

    # Downloads authenticate with a key or with the signature in the link, so that `output` URLs work in
    # a browser or any HTTP client, as the hosted API's do.
    @app.get(f"{API_PREFIX}/files/{{name}}", include_in_schema=False)
    def get_file(name: str, request: Request, sig: str = ""):
        signed = bool(sig) and hmac.compare_digest(sig.encode(), file_signature(secret, name).encode())
        if not signed and keys.verify_key(_bearer(request), home=home) is None:
            raise ApiError(401, "missing or invalid API key or link signature")
        job = store.get(name.removesuffix(".mp4")) if name.endswith(".mp4") else None
        if job is None or job.record.status != "completed" or not job.record.output \
                or not Path(job.record.output).is_file():
            raise ApiError(404, "file not found")
        return FileResponse(job.record.output, media_type="video/mp4", filename=name,
                            content_disposition_type="inline")

    @app.get(f"{API_PREFIX}/media/{{token}}/{{name}}", include_in_schema=False)
    def get_shared(token: str, name: str):
        path = shared_file(token, home=home)
        if path is None:
            raise ApiError(404, "file not found or link expired")
        return FileResponse(path, filename=name, content_disposition_type="inline")

    return app


def _bearer(request: Request) -> Optional[str]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def _read_body(request: Request, job_id: str, home: Path, max_bytes: int) -> tuple[dict, Optional[str], dict]:
    """formState, webhook and uploaded files (saved under the job's upload folder) from JSON or multipart."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return await _read_form(request, job_id, home, max_bytes)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise ApiError(413, "body: JSON body is too large; send media as URLs or multipart uploads", "body")
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise ApiError(400, "body: is not valid JSON", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'body: expected a JSON object {"webhook"?: url, "formState": {...}}', "body")
    form_state = body.get("formState")
    if form_state is None:
        raise ApiError(400, "formState: is required", "formState")
    if not isinstance(form_state, dict):
        raise ApiError(400, "formState: must be a JSON object", "formState")
    webhook = body.get("webhook")
    if webhook is not None and not isinstance(webhook, str):
        raise ApiError(400, "webhook: must be a URL string", "webhook")
    return form_state, webhook, {}


async def _read_form(request: Request, job_id: str, home: Path, max_bytes: int) -> tuple[dict, Optional[str], dict]:
    form_state: dict[str, Any] = {}
    webhook, uploads = None, {}
    async with request.form(max_files=len(MEDIA_FIELDS), max_fields=50) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in MEDIA_FIELDS:
                    raise ApiError(400, f"{name}: is not a media field ({', '.join(MEDIA_FIELDS)})", name)
                uploads[name] = str(await _save_upload(value, name, upload_dir(home, job_id), max_bytes))
            elif name == "formState":
                try:
                    parsed = json.loads(value)
                except ValueError:
                    raise ApiError(400, "formState: is not valid JSON", "formState") from None
                if not isinstance(parsed, dict):
                    raise ApiError(400, "formState: must be a JSON object", "formState")
                form_state.update(parsed)
            elif name == "webhook":
                webhook = value or None
            else:
                form_state[name] = value  # plain fields (resolution=720p); pydantic converts "7" to 7
    form_state.update(uploads)
    return form_state, webhook, uploads


async def _save_upload(upload: UploadFile, field: str, folder: Path, max_bytes: int) -> Path:
    if upload.size is not None and upload.size > max_bytes:
        raise ApiError(413, f"{field}: upload is larger than {max_bytes / (1 << 20):g} MB", field)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "".join(c for c in Path(upload.filename or "").suffix[:10] if c.isalnum() or c == ".")
    path = folder / f"{field}{suffix}"
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"{field}: upload is larger than {max_bytes / (1 << 20):g} MB", field)
            out.write(chunk)
    if size == 0:
        raise ApiError(400, f"{field}: uploaded file is empty", field)
    return path


def _new_job(model: str, job_id: str, form_state: dict, webhook: Optional[str], uploads: dict,
             key: keys.KeyInfo, base: str, settings: ServerSettings) -> ServerJob:
    """Validate everything that can be checked before rendering; errors name the field (400)."""
    webhook = check_webhook_url(webhook, allow_private=settings.allow_private_urls) if webhook else None
    for field in MEDIA_FIELDS:
        value = form_state.get(field)
        if field in uploads or not isinstance(value, str) or not value.strip():
            continue
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(field, "must be an http(s) URL or a file uploaded with the request (multipart)")
        if not settings.allow_private_urls:
            check_public(parts.hostname, field)
    request = parse_request(model, form_state)
    record = JobRecord(id=job_id, model=model, request=request.model_dump(exclude_none=True))
    return ServerJob(record=record, form_state=form_state, base_url=base, uploads=uploads, webhook=webhook,
                     key_id=key.id)
