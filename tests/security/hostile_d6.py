"""A malicious (or man-in-the-middle) d6 on loopback: answers chosen by the test, every request kept.

The sandbox only ever answers what d6 documents; this server answers Get Client Integrations with
whatever records a test hands it (template text in ids, control characters in names) and an
empty collection everywhere else, and records each request's path and headers so a test can see
what the provider sent back to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class HostileD6:
    """The running server: its base URL, the records it serves and the requests it received."""

    base_url: str
    client_integrations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def school_headers(self) -> list[str]:
        """Return every ``HTTP-X-SCHOOLID`` header value the provider sent."""
        return [
            r["headers"]["HTTP-X-SCHOOLID"]
            for r in self.requests
            if "HTTP-X-SCHOOLID" in r["headers"]
        ]


@contextmanager
def run_hostile_d6() -> Iterator[HostileD6]:
    """Serve a hostile d6 on 127.0.0.1 (port 0) for the duration of the ``with`` block."""
    ready = threading.Event()
    state: dict[str, Any] = {}
    server = HostileD6(base_url="")

    async def answer(request: web.BaseRequest) -> web.Response:
        server.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers)}
        )
        if request.path.endswith("/settings/clientintegrations"):
            records = server.client_integrations
            return web.json_response(
                {"data": records, "meta": {"limit": 50, "count": len(records)}}
            )
        return web.json_response({"data": [], "meta": {"limit": 50, "count": 0}})

    async def main() -> None:
        runner = web.ServerRunner(web.Server(answer), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the hostile d6 did not start"
    server.base_url = f"http://127.0.0.1:{state['port']}/api"
    try:
        yield server
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
