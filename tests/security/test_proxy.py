"""Loopback is never proxied: with every proxy variable set, neither hook sends to the proxy.

A proxy on the path of a plain-http sandbox URL would read ``HTTP-X-PASSWORD`` in clear text.
The fake proxy below (a loopback server that records every request it gets and answers 502) is
set as ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``ALL_PROXY`` with ``NO_PROXY`` cleared, and real
calls go to the sandbox through both hooks. A control case shows that the proxy settings do
take effect for a non-loopback URL, so the test can fail.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_d6.exceptions import D6Error
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.hooks.loopback import serve
from tests.support import connection_json

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def proxy(monkeypatch):
    """A recording fake proxy on loopback, set in every proxy variable (NO_PROXY removed)."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.BaseRequest) -> web.Response:
        seen.append({"method": request.method, "target": str(request.url), **request.headers})
        return web.Response(status=502, text="fake proxy")

    with serve(record) as url:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, url)
            monkeypatch.setenv(name.lower(), url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield seen


def _async(conn_id: str) -> Any:
    async def call() -> Any:
        async with D6AsyncHook(conn_id, max_attempts=1) as hook:
            return [record async for record in hook.iter_client_integrations()]

    return asyncio.run(call())


def test_neither_hook_sends_loopback_traffic_to_a_proxy(sandbox, monkeypatch, proxy):
    monkeypatch.setenv("AIRFLOW_CONN_D6_PROXIED", connection_json(sandbox, max_attempts=1))
    hook = D6Hook("d6_proxied")
    try:
        synced = list(hook.iter_client_integrations())
        assert hook.get_school(1000)["school_id"] == 1000
    finally:
        hook.close()
    assert synced, "the sandbox lists client integrations"
    assert _async("d6_proxied") == synced
    assert proxy == []


def test_the_proxy_settings_do_reach_a_non_loopback_url(monkeypatch, proxy):
    # The control: an https URL outside loopback goes to the proxy (a CONNECT, which carries no
    # credentials), so an empty record above means loopback was exempt, not that the variables
    # were ignored. The fake proxy refuses the tunnel, so nothing leaves the machine.
    conn = {"conn_type": "d6", "host": "https://d6.example.invalid/api"}
    conn.update(login="proxy-user", password="Proxy-pw-7d1e0c55", extra={"max_attempts": 1})
    monkeypatch.setenv("AIRFLOW_CONN_D6_ELSEWHERE", json.dumps(conn))
    with pytest.raises(D6Error):
        D6Hook("d6_elsewhere").get_school(1000)
    with pytest.raises(D6Error):
        _async("d6_elsewhere")
    assert [r["method"] for r in proxy] == ["CONNECT", "CONNECT"]  # one per hook
    assert all(r["target"].endswith("d6.example.invalid:443") for r in proxy)
    assert not any("Proxy-pw-7d1e0c55" in json.dumps(r) for r in proxy)
