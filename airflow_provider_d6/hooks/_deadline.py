"""A total deadline per request for the sync hook: the socket is shut down when time is up.

``requests`` (urllib3, http.client) only bounds each socket operation: a server that sends one
byte just inside every timeout, or an endless chunked body, keeps a read going forever. Here one
daemon thread per process holds the deadline of every request in flight; when one passes, it
shuts that request's socket down, which ends the blocked read at once (as an error or an early
end of the body), and the hook reports the attempt as timed out.

The socket is attached when the request has been sent and its answer is awaited (urllib3's
``getresponse``), through connection classes installed on the hook's adapter: connecting is
bounded by the connect timeout already.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import pool_classes_by_scheme as _default_pool_classes


class Ticket:
    """The deadline of one request in flight, and the socket to shut down when it passes."""

    __slots__ = ("_watchdog", "at", "expired", "sock")

    def __init__(self, watchdog: Watchdog, at: float) -> None:
        self._watchdog = watchdog
        self.at = at
        self.expired = False
        self.sock: socket.socket | None = None

    def attach(self, sock: socket.socket | None) -> None:
        """Remember *sock* as this request's socket (shut it down at once if time is up)."""
        self._watchdog.attach(self, sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket: its override would drop the TLS state
    # under the thread that is reading; shutting the descriptor down ends that read. OSError:
    # already closed or not connected, nothing left to end.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread that expires the requests in flight whose deadline has passed.

    Only requests in flight are held (a few dozen at most), so starting and finishing one is a
    set insertion and removal under a lock; the thread sleeps until the earliest deadline.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also after a fork: the child (a task process) has no watchdog thread, and its copy of
        # the lock may be held; it starts afresh on first use.
        self._cond = threading.Condition()
        self._active: set[Ticket] = set()
        self._next = math.inf  # when the thread wakes next
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> Ticket:
        """Return the ticket of a request that must be over within *seconds* from now."""
        ticket = Ticket(self, time.monotonic() + seconds)
        with self._cond:
            self._active.add(ticket)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="d6-request-deadlines", daemon=True
                )
                self._thread.start()
            if ticket.at < self._next:
                self._next = ticket.at
                self._cond.notify()
        return ticket

    def finish(self, ticket: Ticket) -> None:
        """Forget *ticket*: its request is over and its socket (maybe pooled) is not touched."""
        with self._cond:
            self._active.discard(ticket)
            ticket.sock = None

    def attach(self, ticket: Ticket, sock: socket.socket | None) -> None:
        """Remember *sock* for *ticket*, shutting it down at once if the deadline has passed."""
        with self._cond:
            if ticket.expired:
                _shutdown(sock)
            elif ticket in self._active:
                ticket.sock = sock

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for ticket in [t for t in self._active if t.at <= now]:
                    self._active.discard(ticket)
                    ticket.expired = True
                    _shutdown(ticket.sock)
                    ticket.sock = None
                self._next = min((t.at for t in self._active), default=math.inf)
                self._cond.wait(None if self._next == math.inf else self._next - now)


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._reset)

_current = threading.local()


class current_ticket:  # a context manager, named like a function
    """Make *ticket* the one that connections opened by this thread attach their socket to."""

    def __init__(self, ticket: Ticket) -> None:
        self._ticket = ticket

    def __enter__(self) -> Ticket:
        _current.ticket = self._ticket
        return self._ticket

    def __exit__(self, *exc_info: object) -> None:
        _current.ticket = None
        WATCHDOG.finish(self._ticket)


class _Attaching:
    """Mixed into urllib3's connections: attach the socket to the thread's ticket."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        ticket: Ticket | None = getattr(_current, "ticket", None)
        if ticket is not None:
            ticket.attach(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Attaching, HTTPConnection):
    pass


class _HTTPSConnection(_Attaching, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through an HTTP proxy) honour tickets."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # A SOCKS proxy brings connection classes of its own; those are left alone.
        if manager.pool_classes_by_scheme is _default_pool_classes:
            manager.pool_classes_by_scheme = _POOLS
        return manager
