"""Reading a d6 connection: options refused outside their range, credentials that can be sent as
headers, the /api segment, unknown extras, verify=false and max_attempts (old name max_retries)."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_d6.exceptions import D6ConfigurationError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.hooks.support import d6_requests

CI = "/api/v2/settings/clientintegrations"
CONFIG_LOGGER = "airflow.task.hooks.airflow_provider_d6.hooks._config"


def _conn(monkeypatch, conn_id="d6_chk", **fields):
    conn = {
        "conn_type": "d6",
        "host": "https://d6.example.test/api",
        "login": "integrator-user",
        "password": "S3ntinel-chk-5e6f7a8b9c",
        "extra": {},
    }
    conn.update(fields)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def _forms(secret: str) -> list[str]:
    """The forms a leaked credential could take in a message."""
    return [
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        secret.strip(),
    ]


def _load_async(conn_id: str, **kwargs) -> D6AsyncHook:
    async def load() -> D6AsyncHook:
        hook = D6AsyncHook(conn_id, **kwargs)
        try:
            await hook._ensure()
        finally:
            await hook.close()
        return hook

    return asyncio.run(load())


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- numeric options: finite, in range, named when refused ------------------------------------

BAD_NUMBERS = [
    float("nan"),
    float("inf"),
    "nan",
    "inf",
    "-inf",
    "1e400",
    -1,
    "-0.5",
    True,
    "١٢",  # Arabic-Indic digits, which int() and float() accept
    "²",
    10**30,
    "9" * 5000,
    "5 seconds",
    [5],
]
RANGES = {
    "timeout": "(0, 3600]",
    "requests_per_second": "(0, 10000]",
    "max_attempts": "[1, 20]",
    "max_retries": "[0, 20]",
}


@pytest.mark.parametrize("option", sorted(RANGES))
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=lambda v: repr(v)[:20])
def test_bad_number_in_extras_refused_naming_field_and_range(monkeypatch, option, value):
    hook = D6Hook(_conn(monkeypatch, extra={option: value}))
    with pytest.raises(D6ConfigurationError) as caught:
        hook.session  # noqa: B018
    assert option in str(caught.value)
    assert RANGES[option] in str(caught.value)
    assert len(str(caught.value)) < 200  # a 5,000-digit value is not copied into the message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", float("inf")),
        ("timeout", 86400),
        ("requests_per_second", float("nan")),
        ("requests_per_second", 1e6),
        ("max_attempts", 0),
        ("max_attempts", 1000),
        ("max_retries", -1),
        ("max_attempts", 2.5),
    ],
)
def test_bad_number_as_hook_kwarg_refused_in_both_hooks(monkeypatch, option, value):
    conn_id = _conn(monkeypatch)
    with pytest.raises(D6ConfigurationError, match=option):
        D6Hook(conn_id, **{option: value}).session  # noqa: B018
    with pytest.raises(D6ConfigurationError, match=option):
        _load_async(conn_id, **{option: value})


@pytest.mark.parametrize(
    ("extra", "option", "expected"),
    [
        ({"timeout": "3600"}, "timeout", 3600.0),
        ({"timeout": 0.25}, "timeout", 0.25),
        ({"requests_per_second": "10000"}, "requests_per_second", 10000.0),
        ({"max_attempts": "20"}, "max_attempts", 20),
        ({"max_attempts": 3.0}, "max_attempts", 3),
    ],
)
def test_bounds_accepted(monkeypatch, extra, option, expected):
    assert getattr(D6Hook(_conn(monkeypatch, extra=extra)).settings, option) == expected


# -- max_attempts, and max_retries as its old name ----------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "extra", "attempts"),
    [
        ({}, {"max_attempts": 2}, 2),
        ({}, {"max_retries": 2}, 2),  # the old name means the same
        ({}, {"max_retries": 0}, 1),  # 0 always meant one attempt
        ({"max_attempts": 1}, {"max_attempts": 3}, 1),  # a kwarg wins over the extra
        ({"max_retries": 2}, {"max_attempts": 3}, 2),  # whichever name it uses
        ({}, {"max_attempts": 3, "max_retries": 3}, 3),  # both names agreeing
    ],
)
def test_max_attempts_counts_every_attempt(sandbox, connect, kwargs, extra, attempts):
    sandbox.control.set_faults(
        script=[{"kind": "500", "times": 10, "method": "GET", "path": CI}], retry_after="0"
    )
    hook = D6Hook(connect(sandbox, **extra), **kwargs)
    ok, message = hook.test_connection()
    assert not ok and "HTTP 500" in message
    assert len(d6_requests(sandbox.control, CI, "GET")) == attempts
    assert hook.retry_policy.max_attempts == attempts


def test_max_attempts_and_old_name_disagreeing_refused(monkeypatch):
    conn_id = _conn(monkeypatch, extra={"max_attempts": 3, "max_retries": 5})
    with pytest.raises(D6ConfigurationError, match=r"max_attempts.*max_retries"):
        D6Hook(conn_id).session  # noqa: B018


def test_settings_keep_the_old_attribute(monkeypatch):
    settings = D6Hook(_conn(monkeypatch, extra={"max_attempts": 4})).settings
    assert settings.max_attempts == settings.max_retries == 4


# -- credentials: checked when read, never echoed -----------------------------------------------

HOSTILE = [
    "S3ntinel-pw-trailing\n",
    " S3ntinel-pw-leading",
    "S3ntinel-pw-cr\r",
    "S3ntinel-pw-\x01-ctl",
    "S3ntinel-pw-\t-tab",
    "S3ntinel-pw-\x7f-del",
    "S3ntinel-pw-é-latin1",
    "S3ntinel-pw-Ω-nonlatin1",
    "S3ntinel-pw-\u2028-sep",
]


@pytest.mark.parametrize("field", ["login", "password"])
@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[13:24])
def test_unsendable_credential_refused_without_echo(monkeypatch, field, value):
    conn_id = _conn(monkeypatch, **{field: value})
    errors = []
    with pytest.raises(D6ConfigurationError) as caught:
        D6Hook(conn_id).session  # noqa: B018
    errors.append(caught.value)
    with pytest.raises(D6ConfigurationError) as caught:
        _load_async(conn_id)
    errors.append(caught.value)
    ok, message = D6Hook(conn_id).test_connection()
    assert not ok
    for text in [str(e) for e in errors] + [repr(e) for e in errors] + [message]:
        assert field in text
        assert "S3ntinel" not in text
        for form in _forms(value):
            assert form not in text


def test_sandbox_reflecting_a_control_character_password_gets_no_request(make_sandbox, monkeypatch):
    """The sandbox (aiohttp) answers a header with \\x01 by quoting it in a 400 body."""
    password = "S3ntinel-refl-\x01-9a8b7c"
    handle = make_sandbox(password=password)
    conn_id = _conn(monkeypatch, host=handle.base_url, login=handle.username, password=password)
    ok, message = D6Hook(conn_id).test_connection()
    assert not ok
    assert "password" in message and "control character" in message
    assert "S3ntinel" not in message and "9a8b7c" not in message
    assert d6_requests(handle.control, CI) == []  # refused before anything was sent


def test_credentials_registered_with_the_masker(monkeypatch):
    from airflow.sdk.log import redact

    conn_id = _conn(monkeypatch, login="masked-integrator-7c1d", password="S3ntinel-mask-2b3c4d")
    D6Hook(conn_id).session  # noqa: B018
    text = redact("user masked-integrator-7c1d pass S3ntinel-mask-2b3c4d")
    assert "masked-integrator-7c1d" not in text
    assert "S3ntinel-mask-2b3c4d" not in text


# -- base URL: the /api segment -------------------------------------------------------------------


def test_base_url_without_api_fixed_with_a_warning(sandbox, monkeypatch, caplog):
    bare = sandbox.base_url.removesuffix("/api")
    conn_id = _conn(monkeypatch, host=bare + "/", login=sandbox.username, password=sandbox.password)
    with caplog.at_level(logging.WARNING, logger=CONFIG_LOGGER):
        hook = D6Hook(conn_id)
        assert hook.get_client_integrations()  # every call works instead of answering 404
    assert hook.base_url == bare + "/api"
    assert any("no /api segment" in w for w in _warnings(caplog))


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("https://d6.example.test/api/v2", "drop what follows /api"),
        ("https://d6.example.test/api/v1/", "drop what follows /api"),
        ("https://d6.example.test/integrate", "ending in /api"),
    ],
)
def test_base_url_with_another_path_refused(monkeypatch, host, hint):
    with pytest.raises(D6ConfigurationError, match=hint):
        D6Hook(_conn(monkeypatch, host=host)).session  # noqa: B018


# -- unknown extras and verify=false warn ---------------------------------------------------------


def test_unknown_extras_warn_naming_the_known_ones(monkeypatch, caplog):
    conn_id = _conn(monkeypatch, extra={"time_out": 5, "max_retry": 2, "timeout": 5})
    with caplog.at_level(logging.WARNING, logger=CONFIG_LOGGER):
        D6Hook(conn_id).session  # noqa: B018
    (warning,) = [w for w in _warnings(caplog) if "unknown extra" in w]
    assert "'max_retry'" in warning and "'time_out'" in warning
    for known in ("timeout", "max_attempts", "requests_per_second", "activation_route", "verify"):
        assert known in warning.split("known extras are")[1]


def test_known_extras_do_not_warn(monkeypatch, caplog):
    extra = {"timeout": 5, "max_attempts": 2, "max_retries": 2, "activation_route": "v1"}
    with caplog.at_level(logging.WARNING, logger=CONFIG_LOGGER):
        D6Hook(_conn(monkeypatch, extra=extra)).session  # noqa: B018
    assert _warnings(caplog) == []


@pytest.mark.parametrize("how", ["extra", "kwarg"])
def test_verify_false_warns_every_time_a_hook_reads_it_in_both_hooks(monkeypatch, caplog, how):
    extra = {"verify": "false"} if how == "extra" else {}
    kwargs = {"verify": False} if how == "kwarg" else {}
    conn_id = _conn(monkeypatch, extra=extra)
    with caplog.at_level(logging.WARNING, logger=CONFIG_LOGGER):
        D6Hook(conn_id, **kwargs).session  # noqa: B018
        D6Hook(conn_id, **kwargs).session  # noqa: B018  (another task: warned again)
        _load_async(conn_id, **kwargs)
    warned = [w for w in _warnings(caplog) if "verify=false" in w]
    assert len(warned) == 3
    assert all("d6_chk" in w and "test setups" in w for w in warned)


def test_verify_true_does_not_warn(monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger=CONFIG_LOGGER):
        D6Hook(_conn(monkeypatch)).session  # noqa: B018
    assert _warnings(caplog) == []
