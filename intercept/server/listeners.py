"""The listening sockets of `intercept serve --workers N`, held by the supervisor.

The supervisor binds the public and admin addresses itself, without SO_REUSEPORT, before the
rules load, and keeps those sockets open for as long as it runs; every worker is forked with
them and accepts connections from the same sockets (`site`). So exactly one process group
owns an address: a second Intercept (or any program) cannot bind it, not even while every
worker is being replaced (between a worker's death and its replacement the supervisor still
holds the address, and connections wait in its accept queue instead of going elsewhere).
With SO_REUSEPORT on each worker's own socket, as before, a second instance's workers could
join the same port and take half the traffic.

Outside a supervisor (one process, or a test driving `supervise` directly) nothing is held,
and `site` binds the address as aiohttp does.
"""

from __future__ import annotations

import socket

from aiohttp import web

from intercept.config import Config
from intercept.preflight import ListenError

__all__ = ["hold", "release", "site"]

_HELD: dict[tuple[str, int], list[socket.socket]] = {}
_BACKLOG = 128  # aiohttp's default for its own sites


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _bind(name: str, address: str) -> list[socket.socket]:
    """Listening sockets for every address `address`'s host resolves to (as asyncio binds a
    name such as `localhost`: IPv6 ones only for IPv6). Raises `ListenError` naming it."""
    host, port = _host_port(address)
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, where in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(where)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError as error:
        for sock in sockets:
            sock.close()
        reason = error.strerror or type(error).__name__
        raise ListenError(f"{name} {address}: {reason.lower()}") from None
    return sockets


def hold(config: Config) -> None:
    """In the supervisor, before the rules load: bind the public and admin listeners and keep
    them for the workers it forks (see the module docstring). Raises `ListenError` naming the
    listener whose address is taken; nothing stays bound then."""
    try:
        public = _bind("public listener (listen)", config.listen)
        _HELD[_host_port(config.listen)] = public
        admin = _bind("admin listener (admin_listen)", config.admin_listen)
        _HELD[_host_port(config.admin_listen)] = admin
    except ListenError:
        release()
        raise


def release() -> None:
    """Close every held socket (a supervisor that stops)."""
    for sockets in _HELD.values():
        for sock in sockets:
            sock.close()
    _HELD.clear()


class _Sites(web.BaseSite):
    """Several held sockets (a name resolving to more than one address) as one site."""

    def __init__(self, runner: web.BaseRunner, sockets: list[socket.socket]) -> None:
        super().__init__(runner)
        self._sites = [web.SockSite(runner, sock) for sock in sockets]

    @property
    def name(self) -> str:
        return self._sites[0].name

    async def start(self) -> None:
        for each in self._sites:
            await each.start()


def site(runner: web.BaseRunner, host: str, port: int, *, reuse_port: bool) -> web.BaseSite:
    """The site for `host`:`port`: the supervisor's held sockets in a worker, else a socket of
    this process's own (`reuse_port` as given)."""
    held = _HELD.get((host, port))
    if not held:
        return web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port)
    if len(held) == 1:
        return web.SockSite(runner, held[0])
    return _Sites(runner, held)
