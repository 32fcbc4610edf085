"""Client for the hosted Lipsync API (and the local server, which speaks the same contract).

Submit → poll ``GET /jobs/{id}`` → download. Connection errors, 429 and 5xx are retried with
exponential backoff (``Retry-After`` respected); other errors carry the server's own message.
The API key never appears in messages, logs or ``repr``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

import httpx

from .. import kinds
from ..errors import InputError, LipsyncError

log = logging.getLogger(__name__)
DEFAULT_API_URL = "https://lipsync.studio/api/v1"
MODELS = kinds.NAMES
# A POST that got one of these was not processed, so sending it again cannot create a second job
# (and charge twice). 500/504 may have created one: those are retried for GETs only.
_POST_RETRY_STATUS = {429, 502, 503}
_GET_RETRY_STATUS = {429, 500, 502, 503, 504}
WaitProgress = Callable[[float, str], None]


class RemoteError(LipsyncError):
    """The API refused a request, could not be reached, or the job failed (`job` holds its object)."""

    def __init__(self, message: str, *, status: Optional[int] = None, job: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.job = job


def api_base(url: Optional[str] = None) -> str:
    """Normalise a base URL: "http://host:7860" and ".../api/v1/" both become ".../api/v1"."""
    url = (url or os.environ.get("LIPSYNC_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError("api_url", f"must be an http(s) URL, got {url!r}")
    return url if parts.path else f"{url}/api/v1"


class HostedClient:
    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0,
                 transport: Optional[httpx.BaseTransport] = None):
        self.base_url = api_base(base_url)
        self._key = (api_key or os.environ.get("LIPSYNC_API_KEY") or "").strip()
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True,
                                  headers={"User-Agent": "lipsync-studio"})

    @property
    def is_hosted(self) -> bool:
        """True when talking to the hosted API (which takes public URLs only, no uploads)."""
        return _origin(self.base_url) == _origin(DEFAULT_API_URL)

    def __repr__(self) -> str:
        return f"HostedClient(base_url={self.base_url!r}, api_key={'***' if self._key else None})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "HostedClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------------------------

    def submit(self, model: str, form_state: dict, webhook: Optional[str] = None,
               files: Optional[dict[str, Path]] = None) -> dict:
        """Start a job; returns ``{"id", "status": "processing"}``. `files` (local server only) uploads
        local media as multipart parts named after their fields."""
        if model not in MODELS:
            raise InputError("model", f"unknown job kind {model!r}; expected one of {', '.join(MODELS)}")
        state = {k: v for k, v in form_state.items() if v is not None}
        url = f"{self.base_url}/{model}"
        if files:
            data = {"formState": json.dumps(state), **({"webhook": webhook} if webhook else {})}
            opened = {field: Path(path).open("rb") for field, path in files.items()}
            try:
                parts = {field: (Path(f.name).name, f) for field, f in opened.items()}
                response = self._request("POST", url, data=data, files=parts)
            finally:
                for f in opened.values():
                    f.close()
        else:
            body = {"formState": state, **({"webhook": webhook} if webhook else {})}
            response = self._request("POST", url, json=body)
        job = _json_body(response)
        job_id = job.get("id") or job.get("requestId")
        if not job_id:
            raise RemoteError(f"unexpected answer from {self.base_url}: no job id", status=response.status_code)
        return {**job, "id": job_id}

    def get(self, job_id: str) -> dict:
        return _json_body(self._request("GET", f"{self.base_url}/jobs/{job_id}"))

    def wait(self, job_id: str, *, poll_interval: float = 5, timeout: float = 900,
             progress: Optional[WaitProgress] = None) -> dict:
        """Poll until the job ends; returns the completed job object. A failed job raises RemoteError
        with its `error` (and the object in `.job`). `progress(fraction, stage)` is called after each
        poll; the API reports no fraction, so it is 0 until the end, and `stage` says how long it has run."""
        started = time.monotonic()
        while True:
            job = self.get(job_id)
            status = job.get("status")
            elapsed = time.monotonic() - started
            if status == "completed":
                if progress:
                    progress(1.0, "completed")
                return job
            if status == "failed":
                raise RemoteError(f"job {job_id} failed: {job.get('error') or 'no reason given'}", job=job)
            if progress:
                progress(0.0, f"{status or 'processing'} ({elapsed:.0f} s)")
            if elapsed + poll_interval > timeout:
                raise RemoteError(f"job {job_id} still {status or 'processing'} after {timeout:g} s; "
                                  "poll it later with its id", job=job)
            time.sleep(poll_interval)

    def download(self, url: str, out_path: Path) -> Path:
        """Stream the output to `out_path` (temp file + rename, so a partial download never lands)."""
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        # Output URLs may live on another host (a CDN): the key goes only to the API's own origin.
        headers = self._auth() if _origin(url) == _origin(self.base_url) else {}
        fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for attempt in range(self.retries + 1):
                    try:
                        with self._http.stream("GET", url, headers=headers) as response:
                            if response.status_code in _GET_RETRY_STATUS and attempt < self.retries:
                                self._sleep(attempt, response)
                                continue
                            if response.status_code >= 400:
                                response.read()
                                raise _http_error(response)
                            out.seek(0)
                            out.truncate()
                            for chunk in response.iter_bytes(1 << 16):
                                out.write(chunk)
                        break
                    except httpx.TransportError as exc:
                        if attempt >= self.retries:
                            raise RemoteError(f"download failed: {_reason(exc)}") from None
                        self._sleep(attempt)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the output is an ordinary file
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out_path

    # -- plumbing --------------------------------------------------------------------------------

    def _auth(self) -> dict:
        if not self._key:
            raise RemoteError("no API key: pass --api-key or set LIPSYNC_API_KEY")
        return {"Authorization": f"Bearer {self._key}"}

    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        headers = self._auth()
        retry_status = _POST_RETRY_STATUS if method == "POST" else _GET_RETRY_STATUS
        for attempt in range(self.retries + 1):
            last = attempt >= self.retries
            for part in (kwargs.get("files") or {}).values():
                part[1].seek(0)  # a retried upload starts again from the top
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                # Only a connection that never opened is safe to redo for a POST.
                if last or (method == "POST" and not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))):
                    raise RemoteError(f"cannot reach {self.base_url}: {_reason(exc)}") from None
                log.info("%s %s: %s; retrying", method, url, _reason(exc))
                self._sleep(attempt)
                continue
            if response.status_code in retry_status and not last:
                log.info("%s %s: HTTP %d; retrying", method, url, response.status_code)
                self._sleep(attempt, response)
                continue
            if response.status_code >= 400:
                raise _http_error(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _sleep(self, attempt: int, response: Optional[httpx.Response] = None) -> None:
        delay = min(self.max_backoff, self.backoff * 2**attempt)
        after = _retry_after(response.headers.get("retry-after")) if response is not None else None
        time.sleep(min(self.max_backoff, after) if after is not None else delay)


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _http_error(response: httpx.Response) -> RemoteError:
    message = _server_message(response)
    hint = ""
    if response.status_code in (401, 403):
        hint = " (check the API key: --api-key or LIPSYNC_API_KEY)"
    return RemoteError(f"HTTP {response.status_code}: {message}{hint}", status=response.status_code)


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for name in ("error", "message", "detail"):
            value = body.get(name)
            if isinstance(value, dict):
                value = value.get("message")
            if value:
                return str(value) if not isinstance(value, list) else "; ".join(map(str, value))
    text = response.text.strip().splitlines()[0][:300] if response.text.strip() else ""
    return text or response.reason_phrase or "no details"


def _json_body(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        raise RemoteError(f"unexpected answer (not JSON, HTTP {response.status_code})",
                          status=response.status_code) from None
    if not isinstance(data, dict):
        raise RemoteError("unexpected answer (not a JSON object)", status=response.status_code)
    return data


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
