"""Which network addresses media downloads and webhooks may reach, and an httpx transport that connects
only to an address it checked.

Checking a name and then letting the HTTP client resolve it again to connect is open to DNS rebinding
(the second answer may be 127.0.0.1), so `PinnedTransport` resolves each request once, checks every
address, and connects to a checked one; the Host header, TLS SNI and the certificate check keep the name.

"Public" means globally routable: not loopback, private, shared (CGNAT, 100.64.0.0/10), link-local,
documentation, benchmark, reserved or multicast space, including those spaces reached through an IPv6
form that embeds an IPv4 address (mapped, compatible, translated, 6to4, NAT64).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Union

import httpx

from ..errors import InputError

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# IANA special-purpose IPv4 blocks that are not globally reachable (listed explicitly: Python's
# `is_global` misses some, e.g. 192.0.0.0/24 and multicast, and differs between versions).
_V4_SPECIAL = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))  # fmt: skip
# IPv6 blocks refused outright, beyond what `is_global` refuses: site-local, IPv4-compatible and
# IPv4-translated forms (no media is served there), local-use NAT64, Teredo.
_V6_SPECIAL = tuple(ipaddress.IPv6Network(n) for n in (
    "fec0::/10", "::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2001::/32",
))  # fmt: skip
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: Union[str, Address]) -> bool:
    """True if `address` is globally routable (see the module docstring)."""
    addr = ipaddress.ip_address(address.split("%")[0] if isinstance(address, str) else address)
    if isinstance(addr, ipaddress.IPv4Address):
        return addr.is_global and not any(addr in net for net in _V4_SPECIAL)
    if addr.ipv4_mapped is not None:
        return is_public(addr.ipv4_mapped)
    if addr.sixtofour is not None:
        return is_public(addr.sixtofour)
    if addr in _NAT64:
        return is_public(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return addr.is_global and not addr.is_multicast and not any(addr in net for net in _V6_SPECIAL)


def resolve_host(host: str, port: int, field: str, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for `host`, each checked; refuses the host if any is not public
    (a name that resolves to a mix is treated as hostile)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InputError(field, f"cannot resolve host {host!r}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private and not all(is_public(a) for a in addresses):
        raise InputError(field, "URL points to a private address")
    if not addresses:
        raise InputError(field, f"cannot resolve host {host!r}")
    return addresses


def check_public(host: str, field: str) -> None:
    """Refuse `host` unless every address it resolves to is public."""
    resolve_host(host, 0, field, allow_private=False)


class PinnedTransport(httpx.BaseTransport):
    """Resolve once per request (every redirect is a new request), check, connect to that address.
    Errors name `field`; with `allow_private` the addresses are pinned but not checked."""

    def __init__(self, field: str, *, allow_private: bool, verify: Union[bool, ssl.SSLContext] = True) -> None:
        self.field, self.allow_private = field, allow_private
        # No keep-alive: a pooled connection is keyed by address, and one opened for another name
        # (with its own TLS name check) must never serve this one.
        self._inner = httpx.HTTPTransport(verify=verify, limits=httpx.Limits(max_keepalive_connections=0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        error: Exception = httpx.ConnectError(f"cannot connect to {url.host}", request=request)
        for address in resolve_host(url.host, port, self.field, allow_private=self.allow_private):
            pinned = httpx.Request(request.method, url.copy_with(host=address), headers=request.headers,
                                   stream=request.stream, extensions={**request.extensions, "sni_hostname": url.host})
            try:
                return self._inner.handle_request(pinned)
            except httpx.ConnectError as exc:  # the next checked address, as a resolver's client would
                error = exc
        raise error

    def close(self) -> None:
        self._inner.close()
