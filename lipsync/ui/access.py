"""Who is using the studio, and the HTTP rules in front of it.

The **owner** is whoever started the studio: with `--auth`, anyone who logged in; without a password,
whoever opened the start-up URL with its secret token (as Jupyter does), which leaves an HttpOnly cookie
in that browser. Only the owner manages REST keys, saves presets and sees every job. Everyone else is a
**visitor**: a browser session (its own cookie) that renders and sees only its own jobs.

`StudioGuard` is ASGI middleware in front of the UI and the API on the same port:
- a `Host` other than the bind address, localhost, the share/Space host or `LIPSYNC_PUBLIC_URL`'s host
  is refused (400), so a DNS-rebinding page cannot talk to a studio on loopback;
- a cross-origin request that carries credentials (cookies, Authorization) is refused (403), as is a
  cross-origin preflight: Gradio would otherwise reflect any Origin with credentials;
- wrong passwords on the login form and wrong owner tokens are braked per client (429, Retry-After);
- `?token=` is swapped for the owner cookie and taken out of the address bar.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..server.throttle import AuthThrottle

OWNER_COOKIE = "lipsync-owner"
SESSION_COOKIE = "lipsync-session"
# Five wrong guesses at once, then one a minute: the login form and the owner token share this brake.
LOGIN_BURST, LOGIN_DECAY_S = 5, 60.0
_ALL_INTERFACES = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Viewer:
    """One user of the studio as the event functions see it."""

    session: Optional[str]  # a hash of the browser's session cookie (never the cookie itself)
    owner: bool

    def may_see(self, record) -> bool:
        return self.owner or (self.session is not None and getattr(record, "session", None) == self.session)


# Direct calls from Python (scripts, tests) run as the machine's user: the owner.
OWNER = Viewer(session=None, owner=True)


def _session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()[:32]


def _host_name(host_header: str) -> str:
    """"Example.org:7860" → "example.org"; "[::1]:7860" → "::1"."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Access:
    """The owner token and the host rules of one running studio."""

    def __init__(self, *, bind_host: str = "127.0.0.1", auth: bool = False,
                 public_urls: Callable[[], Iterable[Optional[str]]] = lambda: (), token: Optional[str] = None):
        self.token = token or secrets.token_urlsafe(24)
        self.bind_host = bind_host
        self.auth = auth
        self.public_urls = public_urls  # read at each request: the share link comes up after start-up
        self.throttle = AuthThrottle(LOGIN_BURST, LOGIN_DECAY_S)

    # -- who is asking ---------------------------------------------------------------------------

    def is_owner_token(self, value: Optional[str]) -> bool:
        return bool(value) and hmac.compare_digest(value.encode(), self.token.encode())

    def viewer(self, request) -> Viewer:
        """The viewer behind a Gradio request (None: a direct call from Python, which is the owner)."""
        if request is None:
            return OWNER
        cookies = getattr(request, "cookies", None) or {}
        owner = (self.auth and bool(getattr(request, "username", None))) or self.is_owner_token(cookies.get(OWNER_COOKIE))
        cookie = cookies.get(SESSION_COOKIE)
        if cookie:
            session = _session_id(cookie)
        else:  # a client that keeps no cookies (gradio_client): its page session
            session_hash = getattr(request, "session_hash", None)
            session = _session_id(f"gradio:{session_hash}") if session_hash else None
        return Viewer(session=session, owner=owner)

    def owner_url(self, base_url: str) -> str:
        """The start-up URL that makes its browser the owner's (without `--auth`)."""
        return f"{base_url.rstrip('/')}/?token={self.token}" if not self.auth else base_url

    # -- hosts and origins -----------------------------------------------------------------------

    def allowed_hosts(self) -> set[str]:
        hosts = {"localhost", "127.0.0.1", "::1"}
        if self.bind_host not in _ALL_INTERFACES:
            hosts.add(_host_name(self.bind_host))
        else:  # reachable on the network: the machine's own names too
            hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        for url in self.public_urls():
            if url:
                hosts.add(_host_name(urlsplit(url).netloc))
        for extra in os.environ.get("LIPSYNC_ALLOWED_HOSTS", "").split(","):
            if extra.strip():
                hosts.add(_host_name(extra))
        hosts.discard("")
        return hosts

    def host_allowed(self, host_header: Optional[str]) -> bool:
        name = _host_name(host_header or "")
        if name in self.allowed_hosts():
            return True
        # An address literal cannot be rebound by DNS: on an all-interfaces bind any of ours may be used.
        return self.bind_host in _ALL_INTERFACES and _is_ip(name)

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        parts = urlsplit(origin)
        if parts.netloc and parts.netloc.lower() == (host_header or "").lower():
            return True  # same origin
        public = {_host_name(urlsplit(u).netloc) for u in self.public_urls() if u}
        return bool(parts.hostname) and parts.hostname.lower() in public


class StudioGuard:
    """ASGI middleware enforcing `Access`'s rules (see the module docstring)."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.access.host_allowed(host):
            await self._refuse(scope, receive, send, 400, "This studio does not answer to that Host name. "
                               "Use its own address, or add the name to LIPSYNC_ALLOWED_HOSTS.")
            return
        origin = headers.get("origin")
        if origin and origin != "null" and not self.access.origin_allowed(origin, host):
            credentials = "cookie" in headers or "authorization" in headers
            if credentials or scope.get("method") == "OPTIONS":
                await self._refuse(scope, receive, send, 403, "Cross-origin requests with credentials are refused.")
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        token = next((v for k, v in query if k == "token"), None)
        login = method == "POST" and path.rstrip("/").endswith("/login")
        if (login or token is not None) and (wait := self.access.throttle.retry_after(client)) is not None:
            await self._refuse(scope, receive, send, 429, "Too many wrong passwords or tokens; try again later.",
                               {"retry-after": str(wait)})
            return
        if token is not None and method in ("GET", "HEAD"):
            if self.access.is_owner_token(token):
                await self._become_owner(scope, receive, send, path, [(k, v) for k, v in query if k != "token"])
                return
            self.access.throttle.failed(client)
        cookies = _cookies(headers)
        new_session = None if cookies.get(SESSION_COOKIE) else secrets.token_urlsafe(24)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                if login and message["status"] >= 400:
                    self.access.throttle.failed(client)
                if new_session:
                    message.setdefault("headers", [])
                    message["headers"] = list(message["headers"]) + [
                        (b"set-cookie", _cookie(SESSION_COOKIE, new_session, "Lax").encode())]
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _become_owner(self, scope, receive, send, path: str, rest: list) -> None:
        from starlette.responses import RedirectResponse

        location = path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(location, status_code=303)
        response.raw_headers.append((b"set-cookie", _cookie(OWNER_COOKIE, self.access.token, "Strict").encode()))
        await response(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, message: str, headers: Optional[dict] = None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        from starlette.responses import JSONResponse

        await JSONResponse({"error": message}, status_code=status, headers=headers)(scope, receive, send)


def _cookies(headers) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed Cookie header means "no cookies"
        return {}
    return {k: m.value for k, m in jar.items()}


def _cookie(name: str, value: str, same_site: str) -> str:
    return f"{name}={value}; Path=/; HttpOnly; SameSite={same_site}"
