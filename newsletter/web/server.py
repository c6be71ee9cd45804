"""How both web servers run: uvicorn on a socket bound here, with timeouts and limits.

uvicorn's h11 protocol closes a keep-alive connection that idles between requests, but it
holds a connection that opened and sent nothing, or sends a request's head a byte at a time,
for as long as the client likes; `ReadTimeoutProtocol` gives every request `REQUEST_READ_S`
to arrive whole. A request uvicorn cannot parse (say `Content-Length: abc`) gets its 400 and a
one-line warning. uvicorn's own access log is off: web/http.py's `AccessLog` redacts tokens.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (http.server's was 5)."""
KEEP_ALIVE_S = 5
"""How long a connection may idle between requests."""
REQUEST_READ_S = 10.0
"""How long a request's head and body may take to arrive, from its first byte (or from the
connection's opening)."""
LIMIT_CONCURRENCY = 1000
"""Open connections per process beyond which a request is answered 503 at once."""
GRACEFUL_S = 5
"""How long a stop waits for requests in progress before it cancels them."""


class ReadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request has not arrived whole within
    REQUEST_READ_S (slowloris: a client that holds connections open by sending little or nothing)."""

    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _watch_reading(self) -> None:
        """Start the deadline when a request is awaited or half read; stop it once it is whole
        (answering it is the application's time; between requests the keep-alive timeout rules)."""
        reading = self.conn.their_state in {h11.IDLE, h11.SEND_BODY}
        if reading and self._read_deadline is None and not self.transport.is_closing():
            self._read_deadline = self.loop.call_later(REQUEST_READ_S, self._read_timed_out)
        elif not reading:
            self._stop_deadline()

    def _stop_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.conn.their_state in {h11.IDLE, h11.SEND_BODY} and not self.transport.is_closing():
            logger.info(
                "closed a connection whose request did not arrive in %.0f s", REQUEST_READ_S
            )
            self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server that calls `on_stop` as it begins to shut down, so that endless
    responses (the preview's event streams) end and the stop does not wait for them."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.on_stop is not None:
            self.on_stop()
        await super().shutdown(sockets)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); raises OSError when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def server_config(
    app: ASGIApp | str,
    *,
    log_config: dict[str, Any] | None = None,
    workers: int = 1,
) -> uvicorn.Config:
    """uvicorn's settings for `app`: an ASGI app, or with `workers` > 1 the import string of a
    factory that each worker process calls. `log_config` (logging.config.dictConfig) is applied
    in this process and in each worker; None leaves logging as it is."""
    return uvicorn.Config(
        app,
        http=ReadTimeoutProtocol,
        ws="none",
        loop="asyncio",
        lifespan="on",  # the site starts and stops its notice worker with itself
        log_config=log_config,
        access_log=False,
        server_header=False,
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=LIMIT_CONCURRENCY,
        timeout_graceful_shutdown=GRACEFUL_S,
        workers=workers,
        factory=isinstance(app, str),
    )


def run_workers(config: uvicorn.Config, sock: socket.socket) -> None:
    """Serve `sock` from `config.workers` processes until SIGINT or SIGTERM; a worker that dies
    is replaced."""
    Multiprocess(config, sockets=[sock]).run()
