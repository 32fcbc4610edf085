"""Webhooks: POST the finished job object to the submitter's URL, signed, with retries.

Signature header (verify it before trusting the body):

    X-Lipsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The secret is the submitting key's webhook secret (``whsec_...``, shown by ``lipsync keys create``).
Receivers should reject a timestamp older than a few minutes, which stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Optional
from urllib.parse import urlsplit

import httpx

from ..errors import InputError
from ..media.addresses import PinnedTransport, is_public, resolve_host

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Lipsync-Signature"
TOLERANCE = 300  # seconds a receiver should accept between signing and checking


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: Optional[int] = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret, body, timestamp)}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: float = TOLERANCE,
                     now: Optional[float] = None) -> bool:
    """True if `header` signs `body` with `secret` and is recent. What a receiver does, in Python."""
    parts = dict(item.split("=", 1) for item in (header or "").split(",") if "=" in item)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), parts.get("v1", ""))


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """HTTPS to public hosts; with `allow_private` also private hosts, over http or https."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("webhook", "must be an https:// URL")
    # One resolution decides both rules; the delivery resolves again and connects only to a checked address.
    private = not all(is_public(a) for a in resolve_host(parts.hostname, 0, "webhook", allow_private=True))
    if private and not allow_private:
        raise InputError("webhook", "URL points to a private address (set LIPSYNC_ALLOW_PRIVATE_URLS=1 to allow)")
    if parts.scheme == "http" and not private:
        raise InputError("webhook", "must be an https:// URL (http is allowed only for local testing)")
    return url


def deliver(url: str, job: dict, secret: Optional[str], *, attempts: int, backoff: float, timeout: float,
            allow_private: bool, stop: Optional[threading.Event] = None) -> bool:
    """POST `job` as JSON until a 2xx answer, retrying with exponential backoff. True if delivered."""
    body = json.dumps(job, separators=(",", ":")).encode()
    stop = stop or threading.Event()
    for attempt in range(attempts):
        if attempt:
            if stop.wait(backoff * 2 ** (attempt - 1)):
                return False  # shutting down: the delivery stays pending and is retried at the next start
        headers = {"Content-Type": "application/json", "User-Agent": "lipsync-studio-webhook"}
        if secret:
            headers[SIGNATURE_HEADER] = signature_header(secret, body)
        try:
            check_webhook_url(url, allow_private=allow_private)  # again: DNS may have changed since submission
            # The transport checks the address it connects to; the answer's body is never read.
            with httpx.Client(transport=PinnedTransport("webhook", allow_private=allow_private), timeout=timeout,
                              follow_redirects=False) as client, \
                    client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
            if 200 <= status < 300:
                return True
            reason = f"HTTP {status}"
        except InputError as exc:
            reason = str(exc)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("webhook for job %s: attempt %d/%d failed (%s)", job.get("id"), attempt + 1, attempts, reason)
    return False
