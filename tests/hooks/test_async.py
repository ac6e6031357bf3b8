"""D6AsyncHook against the sandbox (asyncio.run: no pytest-asyncio), and the throttle on a live limit."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_d6.exceptions import D6ForbiddenError, D6NotAuthorisedError, D6ServerError
from airflow_provider_d6.hooks._endpoints import ENDPOINTS
from airflow_provider_d6.hooks._retry import RetryPolicy
from airflow_provider_d6.hooks.d6 import D6AsyncHook
from tests.hooks.support import FAST, d6_requests
from tests.pairs import pick
from tests.support import SANDBOX_PASSWORD

CI = "/api/v2/settings/clientintegrations"


def _run(coro):
    return asyncio.run(coro)


def test_async_lists_every_page_and_finds_one(sandbox, connect):
    sandbox.control.configure(max_allowed_limit=7, default_limit=3)
    conn_id = connect(sandbox)
    truth = sandbox.control.data("client_integrations")
    school_id, api_type_id = pick(sandbox.control, False)

    async def main():
        hook = D6AsyncHook(conn_id, retry_policy=FAST)
        try:
            records = [r async for r in hook.iter_client_integrations()]
            one = await hook.get_client_integration(school_id, api_type_id)
            missing = await hook.get_client_integration(school_id, 99)
            return records, one, missing, repr(hook)
        finally:
            await hook.close()

    records, one, missing, text = _run(main())
    assert records == truth
    assert one["activated_by_integrator"] == "No" and one["school_id"] == school_id
    assert missing is None
    assert SANDBOX_PASSWORD not in text
    log = d6_requests(sandbox.control, CI)
    assert len(log) >= 5 and {r["query"].get("limit") for r in log[1:]} <= {"7"}


def test_async_learns_the_page_limit_per_endpoint(sandbox, connect):
    control = sandbox.control
    control.configure(max_allowed_limit=7, default_limit=3)
    conn_id = connect(sandbox)

    async def main():
        async with D6AsyncHook(conn_id, retry_policy=FAST) as hook:
            first = [r async for r in hook.iter_client_integrations()]
            control.clear_requests()
            # Another endpoint starts from d6's default, then asks for its own largest page ...
            schools = [r async for r in hook._iter_endpoint(ENDPOINTS["schools"], None, {})]
            # ... while client integrations keep the limit they learned.
            again = [r async for r in hook.iter_client_integrations()]
            return first, schools, again

    first, schools, again = _run(main())
    assert again == first
    assert schools and {s["school_id"] for s in schools} <= {
        s["school_id"] for s in control.data("schools")
    }
    school_log = d6_requests(control, "/schools")
    assert len(school_log) >= 2 and "limit" not in school_log[0]["query"]
    assert {r["query"]["limit"] for r in school_log[1:]} == {"7"}
    assert {r["query"]["limit"] for r in d6_requests(control, CI)} == {"7"}


def test_async_retries_and_maps_errors(sandbox, connect):
    conn_id = connect(sandbox)
    control = sandbox.control

    async def main():
        async with D6AsyncHook(conn_id, retry_policy=FAST) as hook:
            control.set_faults(script=[{"kind": "503", "times": 2, "path": CI}], retry_after="0")
            first = await hook.get_client_integration(1000, 8)
            control.set_faults(script=[{"kind": "502", "times": 9, "path": CI}])
            with pytest.raises(D6ServerError):
                await hook.get_client_integration(1000, 8)
            control.set_faults(script=[{"kind": "html403", "times": 1, "path": CI}])
            with pytest.raises(D6ForbiddenError) as info:
                await hook.get_client_integration(1000, 8)
            return first, info.value

    first, forbidden = _run(main())
    assert first["school_id"] == 1000
    assert forbidden.from_firewall
    statuses = [r["status"] for r in d6_requests(control, CI)]
    assert statuses[:3] == [503, 503, 200]
    assert statuses[3:7] == [502] * FAST.max_attempts  # gave up after max attempts
    assert statuses[7:] == [403]


def test_async_dropped_connection_retried(sandbox, connect):
    conn_id = connect(sandbox)
    sandbox.control.set_faults(script=[{"kind": "drop", "times": 1, "path": CI}])

    async def main():
        async with D6AsyncHook(
            conn_id, retry_policy=RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
        ) as hook:
            return await hook.get_client_integration(1000, 8)

    assert _run(main())["api_type_id"] == 8
    assert [r["fault"] for r in d6_requests(sandbox.control, CI)] == ["drop", None]


def test_async_bad_credentials(make_sandbox, monkeypatch):
    from tests.support import connection_json

    handle = make_sandbox(schools=2, learners_per_school=5)
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_ASYNC_BAD",
        connection_json(handle).replace(SANDBOX_PASSWORD, "wrong-pass-1234"),
    )

    async def main():
        async with D6AsyncHook("d6_async_bad", retry_policy=FAST) as hook:
            await hook.get_client_integration(1000, 8)

    with pytest.raises(Exception) as info:
        _run(main())
    assert getattr(info.value, "status_code", None) == 401 and not isinstance(
        info.value, D6NotAuthorisedError
    )


def test_adaptive_throttle_slows_down_on_a_live_rate_limit(make_sandbox, make_hook):
    handle = make_sandbox(schools=2, learners_per_school=5, rate_limit=10)
    hook = make_hook(handle, retry_policy=RetryPolicy(max_attempts=6, base=0.01, cap=0.05))
    for _ in range(25):
        assert hook.get_client_integration(1000, 8) is not None
    statuses = [r["status"] for r in d6_requests(handle.control, CI)]
    assert statuses.count(200) == 25
    assert 429 in statuses  # the burst ran into d6's limit ...
    assert hook._core.throttle.rate is not None  # ... and the hook throttled itself from then on


def test_async_timeout_is_reported_as_timed_out(sandbox, connect):
    """A reply slower than the timeout ends in D6ConnectionError(timed_out=True), as in the sync hook."""
    from airflow_provider_d6.exceptions import D6ConnectionError

    conn_id = connect(sandbox)
    sandbox.control.set_faults(script=[{"kind": "slow", "times": 1, "path": CI}], slow_seconds=2)

    async def main():
        async with D6AsyncHook(conn_id, timeout=0.3, max_retries=1) as hook:
            return await hook.get_client_integration(1000, 8)

    with pytest.raises(D6ConnectionError) as info:
        _run(main())
    assert info.value.timed_out
    assert len(d6_requests(sandbox.control, CI)) == 1
