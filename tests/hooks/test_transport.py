"""Transport: TLS verification, keep-alive, thread safety, secret masking and Airflow registration."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_d6.exceptions import D6ConnectionError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.hooks.support import FAST, d6_requests
from tests.support import PROJECT_ROOT, SANDBOX_PASSWORD

CI = "/api/v2/settings/clientintegrations"


@pytest.fixture
def tls_sandbox(make_sandbox):
    return make_sandbox(schools=3, learners_per_school=5, tls=True)


def test_tls_verified_against_the_connection_ca(tls_sandbox, make_hook, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE override Session.verify; the connection's CA must still win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.devnull)
    hook = make_hook(tls_sandbox, extra={"verify": tls_sandbox.ca_path})
    assert hook.base_url.startswith("https://")
    assert hook.get_client_integration(1000, 8)["school_id"] == 1000


def test_untrusted_certificate_fails_without_retrying(tls_sandbox, make_hook):
    hook = make_hook(
        tls_sandbox
    )  # verify defaults to the system CAs, which never signed the sandbox
    with pytest.raises(D6ConnectionError, match="SSLError") as info:
        hook.get_client_integrations()
    assert "after 1 attempt" in str(info.value)
    assert len(tls_sandbox.control.requests()) == 0


def test_async_hook_honours_verify(tls_sandbox, connect):
    trusted = connect(tls_sandbox, verify=tls_sandbox.ca_path)
    untrusted = connect(tls_sandbox)

    async def main():
        async with D6AsyncHook(trusted, retry_policy=FAST) as hook:
            record = await hook.get_client_integration(1000, 8)
        async with D6AsyncHook(untrusted, retry_policy=FAST) as hook:
            with pytest.raises(D6ConnectionError):
                await hook.get_client_integration(1000, 8)
        return record

    assert asyncio.run(main())["school_id"] == 1000


def _pool(hook: D6Hook):
    adapter = hook.session.get_adapter(hook.base_url)
    pools = list(adapter.poolmanager.pools._container.values())
    assert len(pools) == 1
    return pools[0]


def test_one_keep_alive_connection_for_sequential_calls(sandbox, hook):
    for _ in range(20):
        hook.get_client_integration(1000, 8)
    assert _pool(hook).num_connections == 1


def test_one_hook_shared_by_32_threads(sandbox, hook):
    truth = {
        (r["school_id"], r["api_type_id"]): r for r in sandbox.control.data("client_integrations")
    }
    pairs = list(truth) * 8

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda p: hook.get_client_integration(*p), pairs))

    assert results == [truth[p] for p in pairs]
    assert len(d6_requests(sandbox.control, CI)) == len(pairs)
    assert _pool(hook).num_connections <= 32  # reused, never one per request


def test_password_registered_with_the_secrets_masker(sandbox, hook):
    from airflow_provider_d6._compat import redact

    hook.get_client_integration(1000, 8)
    assert SANDBOX_PASSWORD not in str(redact(f"password={SANDBOX_PASSWORD}"))


def test_airflow_lists_the_d6_hook():
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=240,
        check=True,
    )
    text = out.stdout + out.stderr
    assert "Error when importing hook" not in text
    hooks = {h["connection_type"]: h for h in json.loads(out.stdout[out.stdout.index("[") :])}
    assert hooks["d6"]["class"] == "airflow_provider_d6.hooks.d6.D6Hook"
