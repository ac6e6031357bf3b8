"""Text from d6 never carries the credentials into an error, a test_connection message or XCom.

A server that reflects the request headers into its answers (as a proxy error page or a
debugging endpoint may) is served on loopback; it quotes the username and password raw,
repr-escaped, JSON-escaped, URL-encoded and HTML-escaped. The credentials are valid printable
ASCII chosen so that every encoding changes them, and each holds a distinctive alphanumeric
token that survives every encoding: finding the token anywhere means a leak in some form.
"""

from __future__ import annotations

import asyncio
import html
import json
import pickle
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from airflow.exceptions import AirflowException

from airflow_provider_d6.exceptions import D6Error, D6ValidationError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from tests.hooks.loopback import serve

USER_TOKEN = "usrTok3n7q9"
PASS_TOKEN = "pwTok3n4x8z"
USERNAME = f"integrator'{USER_TOKEN}\"o/k"
PASSWORD = f'S3nt"in\\el {PASS_TOKEN} %2F<&>+=;'


def _reflections(headers) -> str:
    username = headers.get("HTTP-X-USERNAME", "")
    password = headers.get("HTTP-X-PASSWORD", "")
    return " | ".join(
        [
            f"user {username} pass {password}",
            f"repr {password!r} {username.encode()!r}",
            f"json {json.dumps(password)} {json.dumps({'u': username})}",
            f"url {quote(password, safe='')} {quote_plus(username)}",
            f"html {html.escape(password)} {html.escape(username)}",
        ]
    )


async def _reflecting(request: web.BaseRequest) -> web.StreamResponse:
    mode = request.path.strip("/").split("/")[0]
    text = _reflections(request.headers)
    if mode == "text":  # a non-JSON error page, as aiohttp's own 400 for a bad header
        return web.Response(status=400, text=f"Bad request: {text}", content_type="text/plain")
    if mode == "cut":  # the snippet's cut falls inside the password
        password = request.headers.get("HTTP-X-PASSWORD", "")
        return web.Response(status=400, text="p" * 100 + password, content_type="text/plain")
    if mode == "unauth":
        return web.json_response({"success": False, "message": f"Invalid: {text}"}, status=401)
    if mode == "ops" and request.method == "GET":
        record = {
            "school_id": 1000,
            "school_name": "Reflect Primary",
            "api_type_id": 8,
            "api_type": "Admin+",
            "activated_by_integrator": "No",
        }
        return web.json_response({"data": [record], "meta": {"limit": 10}})
    return web.json_response(
        {
            "success": False,
            "message": f"The given data was invalid: {text}",
            "validation_errors": {
                "HTTP-X-PASSWORD": [f"{request.headers.get('HTTP-X-PASSWORD')!r} is wrong"],
                "echo": [json.dumps(dict(request.headers))],
            },
        },
        status=400,
    )


@pytest.fixture(scope="module")
def reflector():
    with serve(_reflecting) as url:
        yield url


@pytest.fixture
def reflect_conn(monkeypatch, reflector):
    def _connect(mode: str) -> str:
        conn_id = f"d6_reflect_{mode}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "d6",
                    "host": f"{reflector}/{mode}/api",
                    "login": USERNAME,
                    "password": PASSWORD,
                    "extra": {"max_attempts": 1},
                }
            ),
        )
        return conn_id

    return _connect


def assert_clean(*texts: object) -> None:
    for text in texts:
        text = str(text)
        assert USER_TOKEN not in text, text
        assert PASS_TOKEN not in text, text


def _error_texts(err: D6Error) -> list[object]:
    return [
        str(err),
        repr(err),
        err.message,
        json.dumps(err.validation_errors),
        json.dumps(err.body),
        str(pickle.loads(pickle.dumps(err))),
    ]


def test_reflected_credentials_redacted_from_validation_error(reflect_conn):
    hook = D6Hook(reflect_conn("json"))
    with pytest.raises(D6ValidationError) as caught:
        hook.get_client_integrations()
    err = caught.value
    assert "The given data was invalid" in err.message  # d6's message is still there
    assert "***" in err.message
    assert set(err.validation_errors) == {"HTTP-X-PASSWORD", "echo"}
    assert_clean(*_error_texts(err))


def test_reflected_credentials_redacted_from_a_non_json_body(reflect_conn):
    hook = D6Hook(reflect_conn("text"))
    with pytest.raises(D6ValidationError) as caught:
        hook.get_client_integrations()
    assert "non-JSON answer" in caught.value.message
    assert_clean(*_error_texts(caught.value))


def test_no_prefix_of_the_password_survives_the_snippet_cut(reflect_conn):
    with pytest.raises(D6ValidationError) as caught:
        D6Hook(reflect_conn("cut")).get_client_integrations()
    assert "ppp" in caught.value.message
    assert "S3nt" not in caught.value.message


@pytest.mark.parametrize("mode", ["json", "text", "unauth"])
def test_test_connection_message_redacted(reflect_conn, mode):
    ok, message = D6Hook(reflect_conn(mode)).test_connection()
    assert not ok
    assert "HTTP 4" in message
    assert_clean(message)


def test_async_hook_error_redacted(reflect_conn):
    async def call() -> D6Error:
        async with D6AsyncHook(reflect_conn("json")) as hook:
            try:
                await hook.get_client_integration(1000, 8)
            except D6Error as err:
                return err
        raise AssertionError("the reflecting server answers 400")

    err = asyncio.run(call())
    assert isinstance(err, D6ValidationError)
    assert_clean(*_error_texts(err))


def test_operator_report_bound_for_xcom_redacted(reflect_conn):
    operator = ClientIntegrationsOperator(
        task_id="reflect",
        d6_conn_id=reflect_conn("ops"),
        school_id=1000,
        api_type_id=8,
        state=True,
        fail_on_unauthorised=False,
    )
    pushed: dict[str, object] = {}

    class Recorder:  # what the operator hands to XCom before failing the task
        def xcom_push(self, key: str, value: object) -> None:
            pushed[key] = value

    with pytest.raises(AirflowException) as caught:
        operator.execute({"ti": Recorder()})
    report = pushed["report"]
    assert len(report["failed"]) == 1
    assert "HTTP 400" in report["failed"][0]["error"]
    assert_clean(json.dumps(report), caught.value)
