"""The d6 connection: precedence of options, URL safety, credentials and what reaches d6 as headers."""

from __future__ import annotations

import json

import pytest

from airflow_provider_d6.exceptions import D6ConfigurationError
from airflow_provider_d6.hooks._config import DEFAULT_BASE_URL
from airflow_provider_d6.hooks.d6 import D6Hook

PASSWORD = "S3ntinel-cfg-7a1b2c3d4e"


def _conn(
    monkeypatch,
    *,
    host="https://d6.example.test/api",
    login="integrator",
    password=PASSWORD,
    **extra,
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_CFG",
        json.dumps(
            {"conn_type": "d6", "host": host, "login": login, "password": password, "extra": extra}
        ),
    )
    return "d6_cfg"


def test_airflow_contract():
    assert D6Hook.conn_name_attr == "d6_conn_id"
    assert D6Hook.default_conn_name == "d6_default"
    assert D6Hook.conn_type == "d6"
    assert D6Hook.hook_name == "d6+ Integrate"


@pytest.mark.parametrize(
    ("option", "kwarg", "extra", "expected"),
    [
        # hook kwargs win over extras ...
        ("timeout", 7, 11, 7.0),
        ("max_retries", 2, 9, 2),
        ("requests_per_second", 3.5, 8, 3.5),
        ("activation_route", "v1", "v2", "v1"),
        ("verify", False, True, False),
        # ... extras win over defaults (also when the UI stored them as strings) ...
        ("timeout", None, "11", 11.0),
        ("max_retries", None, "0", 1),  # 0 always meant one attempt
        ("requests_per_second", None, 8, 8.0),
        ("activation_route", None, "V2", "v2"),
        ("verify", None, "false", False),
        # ... and defaults apply when neither is given (an empty UI field counts as not given).
        ("timeout", None, None, 30.0),
        ("max_retries", None, "", 5),
        ("requests_per_second", None, "", None),
        ("activation_route", None, None, "auto"),
        ("verify", None, None, True),
    ],
)
def test_precedence_kwargs_over_extras_over_defaults(monkeypatch, option, kwarg, extra, expected):
    extras = {} if extra is None else {option: extra}
    hook = D6Hook(_conn(monkeypatch, **extras), **{option: kwarg})
    assert getattr(hook.settings, option) == expected


def test_empty_host_means_production_url(monkeypatch):
    assert D6Hook(_conn(monkeypatch, host="")).settings.base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize("host", ["http://d6.example.test/api", "http://10.0.0.5:8080/api"])
def test_plain_http_refused_outside_loopback(monkeypatch, host):
    with pytest.raises(D6ConfigurationError, match="clear text"):
        D6Hook(_conn(monkeypatch, host=host)).session  # noqa: B018


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:9/api", "http://localhost:9/api", "http://[::1]:9/api"]
)
def test_plain_http_allowed_on_loopback(monkeypatch, host):
    assert D6Hook(_conn(monkeypatch, host=host)).settings.base_url == host


@pytest.mark.parametrize(
    ("field", "values"), [("password", {"password": ""}), ("login", {"login": None})]
)
def test_missing_credential_named(monkeypatch, field, values):
    with pytest.raises(D6ConfigurationError, match=field):
        D6Hook(_conn(monkeypatch, **values)).session  # noqa: B018


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"activation_route": "v3"}, "activation_route"),
        ({"verify": "/no/such/ca.pem"}, "verify"),
    ],
)
def test_bad_extras_refused(monkeypatch, extra, message):
    with pytest.raises(D6ConfigurationError, match=message):
        D6Hook(_conn(monkeypatch, **extra)).session  # noqa: B018


def test_own_extras_never_headers(monkeypatch):
    conn_id = _conn(
        monkeypatch,
        timeout=5,
        max_retries=2,
        requests_per_second=4,
        activation_route="v1",
        verify=False,
    )
    hook = D6Hook(conn_id)
    session_headers = {k.lower() for k in hook.session.headers}
    prepared = hook.session.prepare_request(
        __import__("requests").Request("GET", hook.base_url + "/v2/settings/clientintegrations")
    )
    for headers in (session_headers, {k.lower() for k in prepared.headers}):
        assert headers.isdisjoint(
            {"timeout", "max_retries", "requests_per_second", "activation_route", "verify"}
        )
        assert {"http-x-username", "http-x-password", "user-agent"} <= headers
    assert hook.session.headers["User-Agent"].startswith("airflow-provider-d6/")


def test_connection_read_once(monkeypatch):
    conn_id = _conn(monkeypatch)
    hook = D6Hook(conn_id)
    calls = []
    original = D6Hook.get_connection

    def counting(conn):
        calls.append(conn)
        return original(conn)

    monkeypatch.setattr(D6Hook, "get_connection", staticmethod(counting))
    assert hook.session is hook.session is hook.get_conn()
    hook.settings  # noqa: B018
    assert calls == [conn_id]


def test_repr_shows_conn_and_url_only(monkeypatch):
    hook = D6Hook(_conn(monkeypatch))
    hook.session  # noqa: B018
    text = repr(hook)
    assert text == "D6Hook(d6_conn_id='d6_cfg', base_url='https://d6.example.test/api')"
    assert PASSWORD not in repr(hook.settings)


def test_session_pool_fits_32_threads(monkeypatch):
    adapter = D6Hook(_conn(monkeypatch)).session.get_adapter("https://d6.example.test/api")
    assert adapter._pool_maxsize >= 32


def test_retry_policy_attempts_precedence(monkeypatch):
    from airflow_provider_d6.hooks._retry import RetryPolicy

    fast = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)
    conn_id = _conn(monkeypatch, max_retries=7)
    assert D6Hook(conn_id).retry_policy.max_attempts == 7  # the extra
    assert D6Hook(conn_id, retry_policy=fast).retry_policy == fast  # an explicit policy kwarg
    combined = D6Hook(conn_id, retry_policy=fast, max_retries=4).retry_policy  # kwarg over policy
    assert (combined.max_attempts, combined.base, combined.cap) == (4, 0.01, 0.02)
    assert D6Hook(_conn(monkeypatch)).retry_policy.max_attempts == 5  # the default


def test_missing_connection_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_D6_NOWHERE", raising=False)
    with pytest.raises(D6ConfigurationError, match="d6_nowhere"):
        D6Hook("d6_nowhere").session  # noqa: B018
