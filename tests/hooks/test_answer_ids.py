"""Ids in d6's answers that are not plain integers end in a typed D6ResponseError (both hooks)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from airflow_provider_d6.exceptions import D6ResponseError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.hooks.loopback import serve

BAD_IDS = {
    "letters": "abc",
    "float": 1000.5,
    "bool": True,
    "superscript": "²",
    "arabic": "١٠٠٠",
    "huge": "9" * 50,
    "hugeint": 10**30,
    "object": {"id": 1000},
    "list": [1000],
}
GOOD_IDS = {"int": (1000, 1000), "string": ("1000", 1000), "padded": (" 1000 ", 1000)}


def _record(school_id):
    return {
        "school_id": school_id,
        "school_name": "Id Primary",
        "api_type_id": "8",
        "api_type": "Admin+",
        "activated_by_integrator": "Yes",
    }


async def _answer(request: web.BaseRequest) -> web.StreamResponse:
    case = request.path.strip("/").split("/")[0]
    value = BAD_IDS[case] if case in BAD_IDS else GOOD_IDS[case][0]
    # The body is written by hand: json_response cannot send 10**30 with more digits than floats.
    body = json.dumps({"data": [_record(value)], "meta": {"limit": 10}})
    return web.Response(body=body.encode(), content_type="application/json")


@pytest.fixture(scope="module")
def id_server():
    with serve(_answer) as url:
        yield url


def _connect(monkeypatch, url: str, case: str) -> str:
    conn_id = f"d6_ids_{case}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "d6",
                "host": f"{url}/{case}/api",
                "login": "integrator-user",
                "password": "S3ntinel-ids-1a2b3c",
                "extra": {"max_attempts": 1},
            }
        ),
    )
    return conn_id


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_bad_id_is_a_typed_error_naming_endpoint_and_field(monkeypatch, id_server, case):
    conn_id = _connect(monkeypatch, id_server, case)
    with pytest.raises(D6ResponseError) as caught:
        D6Hook(conn_id).get_client_integrations()
    assert "school_id" in str(caught.value)
    assert "client_integrations" in str(caught.value)
    assert len(str(caught.value)) < 300  # a 50-digit id is not copied whole

    async def call() -> None:
        async with D6AsyncHook(conn_id) as hook:
            await hook.get_client_integration(1000, 8)

    with pytest.raises(D6ResponseError, match="school_id"):
        asyncio.run(call())


@pytest.mark.parametrize("case", sorted(GOOD_IDS))
def test_integer_ids_and_ids_in_disguise_are_ints(monkeypatch, id_server, case):
    (record,) = D6Hook(_connect(monkeypatch, id_server, case)).get_client_integrations()
    assert record["school_id"] == GOOD_IDS[case][1]
    assert record["api_type_id"] == 8
