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
import heapq
import itertools
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

    __slots__ = ("_lock", "_sock", "at", "done", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False
        self.done = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """Remember *sock* as this request's socket (shut it down at once if time is up)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        """Mark the deadline passed and end any read on the socket."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            _shutdown(self._sock)

    def finish(self) -> None:
        """Mark the request over: its socket (maybe back in the pool) is not touched again."""
        with self._lock:
            self.done = True
            self._sock = None


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket: its override would drop the TLS state
    # under the thread that is reading; shutting the descriptor down ends that read. OSError:
    # already closed or not connected, nothing left to end.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread that expires tickets when their deadline passes (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Ticket]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> Ticket:
        """Return the ticket of a request that must be over within *seconds* from now."""
        ticket = Ticket(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (ticket.at, next(self._order), ticket))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="d6-request-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is ticket:
                self._cond.notify()
        return ticket

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                ticket = heapq.heappop(self._heap)[2]
            ticket.expire()

    def _after_fork(self) -> None:
        # A forked child (a task process) has no watchdog thread: start afresh on first use.
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._after_fork)

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
        self._ticket.finish()


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
