"""Typed errors from real sandbox answers, retry counts from the request log, and no leaked secrets."""

from __future__ import annotations

import logging
import pickle

import pytest

from airflow_provider_d6.exceptions import (
    D6AuthenticationError,
    D6ConnectionError,
    D6ForbiddenError,
    D6NotAuthorisedError,
    D6NotFoundError,
    D6RateLimitError,
    D6ResponseError,
    D6ServerError,
    D6ValidationError,
)
from airflow_provider_d6.hooks.d6 import D6Hook
from tests.hooks.support import d6_requests
from tests.pairs import closed_school, finance_school
from tests.support import SANDBOX_PASSWORD

CI = "/api/v2/settings/clientintegrations"
TRANSACTIONS = "v2/finplus/debtmanagement/financialtransactions"


def _fault(control, kind, times=1, path=CI, method="GET", retry_after="0"):
    control.set_faults(
        script=[{"kind": kind, "times": times, "method": method, "path": path}],
        retry_after=retry_after,
    )


@pytest.mark.parametrize("status", ["429", "500", "502", "503"])
def test_transient_status_retried_then_succeeds(sandbox, make_hook, status):
    hook = make_hook(
        sandbox, requests_per_second=1000
    )  # a fixed rate: no adaptive slow-down on 429
    _fault(sandbox.control, status, times=2)
    assert hook.get_client_integrations(school_id=1000)
    assert [r["status"] for r in d6_requests(sandbox.control, CI)] == [
        int(status),
        int(status),
        200,
    ]


def test_504_retried(sandbox, make_hook):
    # The sandbox has no 504 fault: a gateway timeout is what a proxy in front of d6 answers. A
    # gateway on loopback answers the first request with one and forwards the rest to the sandbox.
    import types

    import aiohttp
    from aiohttp import web

    from tests.hooks.loopback import serve

    root = sandbox.base_url.removesuffix("/api")
    calls = []

    async def gateway(request: web.BaseRequest) -> web.Response:
        calls.append(request.path)
        if len(calls) == 1:
            return web.Response(status=504, text="<html>504</html>", content_type="text/html")
        forwarded = {k: v for k, v in request.headers.items() if k.upper().startswith("HTTP-X-")}
        async with (
            aiohttp.ClientSession() as session,
            session.get(root + request.path_qs, headers=forwarded) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    with serve(gateway) as url:
        behind = types.SimpleNamespace(
            base_url=f"{url}/api", username=sandbox.username, password=sandbox.password
        )
        assert make_hook(behind).get_client_integrations(school_id=1000)
    assert len(calls) == 2 and len(d6_requests(sandbox.control, CI)) == 1


def test_429_honours_retry_after_and_gives_up_after_max_retries(sandbox, make_hook):
    hook = make_hook(sandbox, max_retries=3, requests_per_second=1000)
    _fault(sandbox.control, "429", times=10, retry_after="0")
    with pytest.raises(D6RateLimitError) as info:
        hook.get_client_integrations()
    assert info.value.retry_after == 0.0 and info.value.status_code == 429
    assert len(d6_requests(sandbox.control, CI)) == 3


def test_server_error_after_retries(sandbox, make_hook):
    hook = make_hook(sandbox, max_retries=2)
    _fault(sandbox.control, "500", times=10)
    with pytest.raises(D6ServerError) as info:
        hook.get_client_integrations()
    assert info.value.status_code == 500
    assert len(d6_requests(sandbox.control, CI)) == 2


def test_other_4xx_never_retried(sandbox, hook):
    with pytest.raises(D6NotFoundError):
        hook.get_note(finance_school(sandbox.control), 999999999)
    assert len(sandbox.control.requests()) == 1


def test_bad_credentials(sandbox, connect):
    hook = D6Hook(connect(sandbox))
    hook.session.headers["HTTP-X-PASSWORD"] = "not-the-password"
    with pytest.raises(D6AuthenticationError) as info:
        hook.get_client_integrations()
    assert info.value.status_code == 401
    assert len(sandbox.control.requests()) == 1


def test_school_not_authorised(sandbox, hook):
    with pytest.raises(D6NotAuthorisedError, match="not authorised"):
        list(hook.iter_learners(closed_school(sandbox.control)))


def test_validation_error_carries_fields(sandbox, hook):
    # The hook refuses this itself; the raw run() shows d6's own 400 is understood too.
    with pytest.raises(D6ValidationError) as info:
        hook.run(
            TRANSACTIONS,
            data={"end_date": "2026-01-01"},
            headers={"HTTP-X-SCHOOLID": finance_school(sandbox.control)},
        )
    assert info.value.status_code == 400 and "start_date" in info.value.validation_errors


def test_route_not_found(sandbox, hook):
    with pytest.raises(D6NotFoundError) as info:
        hook.run("v2/no/such/route")
    assert info.value.route_not_found


def test_html_403_points_at_the_firewall(sandbox, hook):
    _fault(sandbox.control, "html403")
    with pytest.raises(D6ForbiddenError) as info:
        hook.get_client_integrations()
    assert info.value.from_firewall and "firewall" in str(info.value) and "IP" in str(info.value)
    assert len(d6_requests(sandbox.control, CI)) == 1


@pytest.mark.parametrize("kind", ["empty200", "truncated"])
def test_bad_2xx_body_is_an_error_not_no_data(sandbox, hook, kind):
    _fault(sandbox.control, kind)
    with pytest.raises(D6ResponseError) as info:
        hook.get_client_integrations()
    assert info.value.status_code == 200


def test_dropped_reads_retried(sandbox, hook):
    _fault(sandbox.control, "drop", times=2)
    assert hook.get_client_integrations(school_id=1000)
    assert len(d6_requests(sandbox.control, CI)) == 3


def test_no_answer_after_retries(sandbox, make_hook):
    hook = make_hook(sandbox, max_retries=2)
    _fault(sandbox.control, "drop_before", times=5)
    with pytest.raises(D6ConnectionError) as info:
        hook.get_client_integrations()
    assert "2 attempt" in str(info.value)


def test_timeout_applies_to_every_request(sandbox, make_hook):
    hook = make_hook(sandbox, timeout=0.3, max_retries=1)
    sandbox.control.set_faults(script=[{"kind": "slow", "times": 1, "path": CI}], slow_seconds=1)
    with pytest.raises(D6ConnectionError, match="Timeout"):
        hook.get_client_integrations()


def test_errors_survive_pickling(sandbox, hook):
    _fault(sandbox.control, "html403")
    with pytest.raises(D6ForbiddenError) as info:
        hook.get_client_integrations()
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.from_firewall and clone.status_code == 403 and str(clone) == str(info.value)


def test_password_never_in_logs_errors_or_repr(sandbox, make_hook, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    hook = make_hook(sandbox, max_retries=2)
    texts = [repr(hook)]
    hook.get_client_integrations()
    texts.append(repr(hook))
    for kind in ("500", "html403", "truncated", "drop_before"):
        _fault(sandbox.control, kind, times=5)
        with pytest.raises(Exception) as info:
            hook.get_client_integrations()
        texts += [str(info.value), repr(info.value), repr(info.value.__dict__)]
        sandbox.control.clear_faults()
    with pytest.raises(D6NotAuthorisedError) as info:
        list(hook.iter_notes(closed_school(sandbox.control)))
    texts += [
        str(info.value),
        repr(info.value.__dict__),
        str(hook.test_connection()),
        repr(hook.settings),
    ]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert "retrying" in "".join(texts)  # the retries were logged ...
    assert all(
        SANDBOX_PASSWORD not in text for text in texts
    )  # ... and nothing leaked the password
