"""The local REST API, field for field the hosted one.

    POST /api/v1/lipsync-video | lipsync-image | lipsync-image-multi   {"webhook"?, "formState": {...}}
         → {"id": "<uuid>", "status": "processing"}
    GET  /api/v1/jobs/{id} → {id, model, status, output, error, executionTime, timings}

Every request needs ``Authorization: Bearer sk_...``; a job is seen only with the key that submitted it.
Media fields take http(s) URLs; a multipart body may carry the files themselves (parts named after the
fields, plus ``formState`` as JSON text).
"""

from __future__ import annotations

import logging
import mimetypes
import shutil
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import config
from ..engines import check_options, get_engine
from ..errors import EngineError, InputError
from ..jobs.records import JobRecord
from ..media.addresses import check_public  # the same address rules the download applies
from ..requests import REQUEST_CLASSES, ImageRequest, MultiRequest, VideoRequest, parse_request
from ..workers.settings import BrokerSettings
from . import keys
from .body import discard_rest, read_submission
from .db import DatabaseCorrupt, open_database, server_secret
from .errors import ApiError, error_body
from .links import API_PREFIX, public_job, shared_file, signed_link_ok
from .settings import ServerSettings
from .store import JobStore, ServerJob
from .throttle import AuthThrottle
from .webhooks import check_webhook_url
from .worker import MEDIA_FIELDS, JobQueue, upload_dir

log = logging.getLogger(__name__)
REQUEST_MODELS = REQUEST_CLASSES
MODELS = tuple(REQUEST_MODELS)
# Served inline by the shared-media route; anything else is a download (an .html or .svg file shown
# inline would run script on this origin).
INLINE_TYPES = ("audio/", "video/", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


# -- the OpenAPI description (bodies are read by `read_submission`, under limits, not by FastAPI) --------


class Submitted(BaseModel):
    id: str
    status: Literal["processing"]


class JobObject(BaseModel):
    id: str
    model: str
    status: Literal["processing", "completed", "failed"]
    output: Optional[str] = None
    error: Optional[str] = None
    executionTime: Optional[int] = None
    timings: dict[str, int] = {}


class ErrorBody(BaseModel):
    error: str
    field: Optional[str] = None


ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "bad input; `field` names it"), (401, "missing or invalid API key"), (404, "unknown job"),
    (413, "a body, field or upload over its size limit"), (429, "too many failed attempts: see Retry-After"),
    (503, "the job broker (workers' queue) is unreachable: try again later"),
)}  # fmt: skip


def _request_body(model: str) -> dict:
    form = REQUEST_MODELS[model].model_json_schema()
    form["properties"].pop("model", None)
    media = [name for name in MEDIA_FIELDS if name in form["properties"]]
    json_body = {"type": "object", "required": ["formState"],
                 "properties": {"webhook": {"type": "string", "description": "https URL to POST the job to"},
                                "formState": form}}
    multipart = {"type": "object",
                 "properties": {"formState": {"type": "string", "description": "formState as JSON text"},
                                "webhook": {"type": "string"},
                                **{name: {"type": "string", "format": "binary"} for name in media}}}
    return {"required": True, "content": {"application/json": {"schema": json_body},
                                          "multipart/form-data": {"schema": multipart}}}


def create_app(settings: Optional[ServerSettings] = None, *, home: Optional[Path] = None,
               broker: Optional[BrokerSettings] = None) -> FastAPI:
    """The API app; its lifespan starts and stops the job queue. Mount the UI on it at "/"."""
    settings = settings or ServerSettings.from_env()
    home = config.private_dir(Path(home) if home else config.home())
    open_database(home)  # a corrupt server.db is moved aside, with one line saying so
    store = JobStore(home)
    secret = server_secret(home)
    throttle = AuthThrottle(settings.auth_failures, settings.auth_failure_decay)
    broker = broker or BrokerSettings.from_env()
    if broker.url:  # renders go to Celery workers; else the embedded thread queue (nothing to install)
        from ..workers.dispatch import CeleryQueue
        from ..workers.routes import worker_router

        queue = CeleryQueue(store, settings, broker)
    else:
        queue = JobQueue(store, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(queue.start)
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
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return JSONResponse(error_body(exc.message, exc.field), status_code=exc.status,
                            headers={**headers, **(exc.headers or {})})

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse(error_body(str(exc), exc.field), status_code=400)

    @app.exception_handler(DatabaseCorrupt)
    async def _database_error(request: Request, exc: DatabaseCorrupt):
        log.error("%s", exc)
        return JSONResponse(error_body("the server's database is damaged; its owner has been told"), status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {}
        field = str(err.get("loc", ("request",))[-1])
        return JSONResponse(error_body(f"{field}: {err.get('msg', 'is invalid')}", field), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    def base_url(request: Request) -> str:
        return settings.public_url or str(request.base_url).rstrip("/")

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def throttled(request: Request) -> None:
        """429 for a client that failed too often, before its credentials are even looked at."""
        retry = throttle.retry_after(client_of(request))
        if retry is not None:
            raise ApiError(429, f"too many failed attempts from this address; retry in {retry} s",
                           headers={"Retry-After": str(retry)})

    bearer = HTTPBearer(auto_error=False, description="an API key: `lipsync keys create`")

    def require_key(request: Request,
                    credentials: Optional[HTTPAuthorizationCredentials] = Security(bearer)) -> keys.KeyInfo:
        throttled(request)
        info = keys.verify_key(credentials.credentials if credentials else None, home=home)
        if info is None:
            throttle.failed(client_of(request))
            raise ApiError(401, "missing or invalid API key: send Authorization: Bearer sk_...")
        return info

    def owned_job(job_id: str, key: keys.KeyInfo) -> ServerJob:
        """The job if `key` submitted it; another key's job reads as unknown, as it would to a stranger."""
        job = store.get(job_id)
        if job is None or job.key_id != key.id:
            raise ApiError(404, f"job {job_id} not found")
        return job

    api = APIRouter(prefix=API_PREFIX, responses=ERRORS)

    def submit_route(model: str):
        async def submit(request: Request, key: keys.KeyInfo = Depends(require_key)) -> dict:
            reason = await run_in_threadpool(queue.unavailable)
            if reason:  # before the body is read: nothing is stored for a job that cannot run
                raise ApiError(503, reason, headers={"Retry-After": "10"})
            job_id = str(uuid.uuid4())
            folder = upload_dir(home, job_id)
            try:
                form_state, webhook, uploads = await read_submission(request, folder, MEDIA_FIELDS,
                                                                     settings.max_media_bytes)
                job = await run_in_threadpool(_new_job, model, job_id, form_state, webhook, uploads, key,
                                              base_url(request), settings)
                await run_in_threadpool(store.add, job)
            except ApiError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                if exc.status == 413 and not await discard_rest(request):
                    exc.headers = {**(exc.headers or {}), "Connection": "close"}  # read no more of it
                raise
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            queue.submitted(job)
            return {"id": job.id, "status": "processing"}

        submit.__name__ = f"submit_{model.replace('-', '_')}"
        return submit

    for model in MODELS:
        api.add_api_route(f"/{model}", submit_route(model), methods=["POST"], summary=f"Submit a {model} job",
                          responses={200: {"model": Submitted}}, openapi_extra={"requestBody": _request_body(model)})

    @api.get("/jobs/{job_id}", summary="Job status and result", responses={200: {"model": JobObject}})
    def get_job(job_id: str, request: Request, key: keys.KeyInfo = Depends(require_key)) -> dict:
        job = owned_job(job_id, key)
        if store.was_deleted(job):
            raise ApiError(404, f"job {job_id} no longer exists: it was deleted")
        return public_job(job, base_url(request), secret, settings.link_ttl)

    # Downloads authenticate with the owner's key or with the signature in the link, so that `output`
    # URLs work in a browser or any HTTP client, as the hosted API's do; a link expires after link_ttl.
    @api.get("/files/{name}", summary="Download an output (its signed link, or the owner's key)",
             responses={200: {"content": {"video/mp4": {}}, "description": "the MP4"}})
    def get_file(name: str, request: Request, exp: str = "", sig: str = ""):
        throttled(request)
        job_id = name.removesuffix(".mp4") if name.endswith(".mp4") else ""
        if not signed_link_ok(secret, name, exp, sig):
            key = keys.verify_key(_bearer(request), home=home)
            if key is None:
                throttle.failed(client_of(request))
                raise ApiError(401, "missing or invalid API key, or the link expired: GET /api/v1/jobs/{id} "
                                    "gives a fresh one")
            owned_job(job_id, key)
        job = store.get(job_id) if job_id else None
        if job is None or job.record.status != "completed" or not job.record.output \
                or not Path(job.record.output).is_file():
            raise ApiError(404, "file not found")
        return FileResponse(job.record.output, media_type="video/mp4", filename=name,
                            content_disposition_type="inline", headers=NOSNIFF)

    @api.get("/media/{token}/{name}", summary="A file the studio shares for a while (the token is the permission)")
    def get_shared(token: str, name: str, request: Request):
        throttled(request)
        path = shared_file(token, home=home)
        if path is None:
            throttle.failed(client_of(request))
            raise ApiError(404, "file not found or link expired")
        # The type comes from the file itself, never from the name in the URL.
        media_type = mimetypes.guess_type(path.name)[0] or ""
        if media_type.startswith(INLINE_TYPES):
            return FileResponse(path, media_type=media_type, filename=path.name, content_disposition_type="inline",
                                headers=NOSNIFF)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                            content_disposition_type="attachment", headers=NOSNIFF)

    app.include_router(api)
    if broker.url:
        app.include_router(worker_router(queue, throttle))
    return app


def _bearer(request: Request) -> Optional[str]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _new_job(model: str, job_id: str, form_state: dict, webhook: Optional[str], uploads: dict,
             key: keys.KeyInfo, base: str, settings: ServerSettings) -> ServerJob:
    """Validate everything that can be checked before rendering; errors name the field (400)."""
    webhook = check_webhook_url(webhook, allow_private=settings.allow_private_urls) if webhook else None
    for field in MEDIA_FIELDS:
        value = form_state.get(field)
        if field in uploads or not isinstance(value, str) or not value.strip():
            continue
        try:
            parts = urlsplit(value.strip())
            hostname = parts.hostname
        except ValueError:
            raise InputError(field, "is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise InputError(field, "must be an http(s) URL or a file uploaded with the request (multipart)")
        if not settings.allow_private_urls:
            check_public(hostname, field)
    request = parse_request(model, form_state)
    try:  # what the engine supports is declared once: a 400 naming the field, before anything is queued
        check_options(get_engine(request.engine).SPEC, request)
    except EngineError as exc:
        raise InputError("engine", str(exc).removeprefix("engine: ")) from None
    record = JobRecord(id=job_id, model=model, request=request.model_dump(exclude_none=True))
    return ServerJob(record=record, form_state=form_state, base_url=base, uploads=uploads, webhook=webhook,
                     key_id=key.id)
