"""A tiny HTTP server on 127.0.0.1 (port 0) for answers the sandbox never gives.

The handler is an aiohttp request handler; the server runs in its own thread and event loop,
so both the sync hook (from the test's thread) and the async hook (from the test's loop) can
call it over real HTTP.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@contextmanager
def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve *handler* on ``http://127.0.0.1:<port>`` until the block ends; yield that root URL.

    With *ssl_context* (``d6_sandbox.tls.make_tls_context``), serve ``https://`` instead.
    """
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handler), handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the loopback server did not start"
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{state['port']}"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
