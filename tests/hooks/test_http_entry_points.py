"""HttpHook's entry points on D6Hook: each goes through the d6 transport or refuses, typed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_d6.exceptions import (
    D6AuthenticationError,
    D6ConnectionError,
    D6InputError,
    D6NotFoundError,
)
from airflow_provider_d6.hooks.d6 import D6Hook
from tests.hooks.support import d6_requests
from tests.pairs import pick
from tests.support import PROJECT_ROOT

CI = "/v2/settings/clientintegrations"
CI_PATH = "/api" + CI  # as the sandbox's request log and fault scripts name it


def _prepared(hook: D6Hook, method: str, path: str, **kwargs) -> requests.PreparedRequest:
    return requests.Request(method, hook.base_url + path, **kwargs).prepare()


def test_d6_hook_is_still_an_http_hook(hook):
    assert isinstance(hook, HttpHook)


def test_run_and_check_sends_through_the_transport(sandbox, hook):
    school_id, api_type_id = pick(sandbox.control, True)
    sandbox.control.set_faults(
        script=[{"kind": "503", "times": 1, "path": CI_PATH}], retry_after="0"
    )
    request = _prepared(
        hook, "GET", CI, params={"school_id": school_id, "api_type_id": api_type_id}
    )
    payload = hook.run_and_check(hook.get_conn(), request, {})
    # Parsed JSON, after the transport retried d6's 503 once, with the query as given.
    [record] = payload["data"]
    assert (record["school_id"], record["api_type_id"]) == (school_id, api_type_id)
    log = d6_requests(sandbox.control, CI)
    assert [r["status"] for r in log] == [503, 200]
    assert log[-1]["query"] == {"school_id": str(school_id), "api_type_id": str(api_type_id)}


def test_run_and_check_raises_typed_errors(sandbox, hook):
    with pytest.raises(D6NotFoundError) as info:
        hook.run_and_check(hook.get_conn(), _prepared(hook, "GET", "/v2/no/such/route"), {})
    assert info.value.route_not_found and info.value.status_code == 404


def test_run_and_check_never_sends_the_credentials_elsewhere(sandbox, make_sandbox, hook):
    other = make_sandbox(schools=1, learners_per_school=1)
    request = requests.Request("GET", other.base_url + CI).prepare()
    with pytest.raises(D6InputError, match="only to this connection's d6"):
        hook.run_and_check(hook.get_conn(), request, {})
    assert other.control.requests() == [] and sandbox.control.requests() == []


def test_run_and_check_refuses_a_body_that_is_not_json(sandbox, hook):
    request = _prepared(hook, "POST", CI, data={"school_id": "1000"})
    with pytest.raises(D6InputError, match="JSON"):
        hook.run_and_check(hook.get_conn(), request, {})
    assert sandbox.control.requests() == []


def test_run_and_check_does_not_resend_a_write_that_may_have_landed(sandbox, hook):
    sandbox.control.configure(profile="docs")  # the documented v2 route, which applies the PATCH
    school_id, api_type_id = pick(sandbox.control, False)
    sandbox.control.set_faults(script=[{"kind": "drop", "times": 1, "method": "PATCH"}])
    body = {"school_id": school_id, "api_type_id": api_type_id, "state": True}
    with pytest.raises(D6ConnectionError):
        hook.run_and_check(hook.get_conn(), _prepared(hook, "PATCH", CI, json=body), {})
    assert len(d6_requests(sandbox.control, CI, "PATCH")) == 1


def test_run_does_not_resend_a_patch_that_may_have_landed(sandbox, hook):
    sandbox.control.configure(profile="docs")  # the documented v2 route, which applies the PATCH
    school_id, api_type_id = pick(sandbox.control, False)
    sandbox.control.set_faults(script=[{"kind": "drop", "times": 1, "method": "PATCH"}])
    hook.method = "PATCH"
    with pytest.raises(D6ConnectionError):
        hook.run(CI, data={"school_id": school_id, "api_type_id": api_type_id, "state": True})
    assert len(d6_requests(sandbox.control, CI, "PATCH")) == 1


def test_run_takes_params_and_json_and_refuses_other_request_options(sandbox, hook):
    payload = hook.run(CI, params={"api_type_id": 9})
    assert payload["data"] and {r["api_type_id"] for r in payload["data"]} == {9}
    sandbox.control.clear_requests()
    with pytest.raises(D6InputError, match="files"):
        hook.run(CI, files={"f": b"x"})
    assert sandbox.control.requests() == []


def test_run_with_advanced_retry_runs_each_attempt_through_the_transport(sandbox, hook):
    sandbox.control.set_faults(
        script=[{"kind": "503", "times": 2, "path": CI_PATH}], retry_after="0"
    )
    retry_args = {"stop": tenacity.stop_after_attempt(2), "reraise": True}
    payload = hook.run_with_advanced_retry(retry_args, CI, {"api_type_id": 8})
    assert {r["api_type_id"] for r in payload["data"]} == {8}
    # One tenacity attempt: the transport itself absorbed both 503s.
    assert [r["status"] for r in d6_requests(sandbox.control, CI)] == [503, 503, 200]
    with pytest.raises(D6NotFoundError):
        hook.run_with_advanced_retry(retry_args, "v2/no/such/route")


def test_run_with_advanced_retry_refuses_a_write(sandbox, hook):
    hook.method = "POST"
    with pytest.raises(D6InputError, match="POST"):
        hook.run_with_advanced_retry({"stop": tenacity.stop_after_attempt(3)}, CI, {})
    assert sandbox.control.requests() == []


def test_check_response_raises_the_typed_error(sandbox, hook):
    ok = requests.get(sandbox.base_url + CI, headers=hook.get_conn().headers, timeout=30)
    assert hook.check_response(ok) is None
    refused = requests.get(sandbox.base_url + CI, timeout=30)  # no credentials
    with pytest.raises(D6AuthenticationError) as info:
        hook.check_response(refused)
    assert info.value.status_code == 401 and not str(info.value).startswith("401:")


def test_importing_the_sync_hook_does_not_import_the_async_hook():
    # providers-http's own module imports aiohttp at its top, so what is checked is that d6.py
    # adds nothing of aiohttp or the async hook to what HttpHook already brought in.
    code = (
        "import sys, json\n"
        "import airflow.providers.http.hooks.http\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_d6.hooks.d6\n"
        "added = sorted(m for m in set(sys.modules) - before\n"
        "               if m.startswith('aiohttp') or m.endswith('d6_async'))\n"
        "from airflow_provider_d6.hooks.d6 import D6AsyncHook\n"
        "from airflow_provider_d6.hooks.d6_async import D6AsyncHook as direct\n"
        "print(json.dumps([added, D6AsyncHook is direct]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=True,
    )
    # The async hook arrives only when asked for, from the old import path too.
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], True]
