"""d6's answers cannot make a task loop forever: cursors that repeat, cycle or lead nowhere.

A hostile d6 on loopback (real HTTP) answers each collection with a cursor chosen by the case
in the URL's first path segment. Both hooks must end such a walk with a ``D6ResponseError``
naming the endpoint, after a bounded number of requests; the export built on the sync hook must
fail the same way and leave no file behind.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_d6.exceptions import D6ResponseError
from airflow_provider_d6.hooks import _limits
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook
from tests.hooks.loopback import serve

PASSWORD = "Bounds-pw-0c9d7e21"
requests_per_case: Counter[str] = Counter()


def _record(n: int) -> dict[str, Any]:
    return {
        "school_id": 1000 + n % 7,
        "school_name": "Loop Primary",
        "api_type_id": 8,
        "api_type": "Admin+",
        "activated_by_integrator": "Yes",
        "learner_id": 5000 + n,
        "first_name": "Loop",
    }


def _next(case: str, cursor: str | None) -> tuple[str | None, int]:
    """Return (next_cursor, records on this page) for *case* after *cursor*."""
    n = int(cursor[1:]) if cursor and cursor[1:].isdigit() else 0
    if case == "repeat":  # the same cursor every time
        return "c-same", 2
    if case == "alternate":  # A, B, A, B, ...
        return ("c-b" if cursor == "c-a" else "c-a"), 2
    if case == "cycle":  # a longer loop: c1 .. c5, then c1 again
        return f"c{n % 5 + 1}", 2
    if case == "empty":  # new cursors forever, never a record
        return f"c{n + 1}", 0
    if case == "endless":  # new cursors forever, each page full
        return f"c{n + 1}", 2
    if case == "sparse":  # a few empty pages now and then is legitimate; ends after 30 pages
        return (f"c{n + 1}" if n < 29 else None), (0 if n % 4 else 2)
    raise AssertionError(case)


async def _answer(request: web.BaseRequest) -> web.StreamResponse:
    case = request.path.strip("/").split("/")[0]
    requests_per_case[case] += 1
    cursor, count = _next(case, request.query.get("cursor"))
    start = requests_per_case[case] * 10
    meta: dict[str, Any] = {"limit": 2, "max_allowed_limit": 2}
    if cursor is not None:
        meta["next_cursor"] = cursor
    data = [_record(start + i) for i in range(count)]
    return web.Response(
        body=json.dumps({"data": data, "meta": meta}), content_type="application/json"
    )


@pytest.fixture(scope="module")
def looping_d6():
    with serve(_answer) as url:
        yield url


def _connect(monkeypatch, url: str, case: str) -> str:
    conn_id = f"d6_cursor_{case}"
    conn = {"conn_type": "d6", "host": f"{url}/{case}/api", "login": "loop-user"}
    conn.update(password=PASSWORD, extra={"max_attempts": 1})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    requests_per_case[case] = 0
    return conn_id


async def _walk_async(conn_id: str) -> list[dict[str, Any]]:
    async with D6AsyncHook(conn_id) as hook:
        return [record async for record in hook.iter_client_integrations()]


LOOPS = {
    # case: (what the error says, the most requests the walk may take)
    "repeat": ("already followed", 2),
    "alternate": ("already followed", 3),
    "cycle": ("already followed", 6),
    "empty": ("empty pages", _limits.MAX_EMPTY_PAGES),
}


@pytest.mark.parametrize("case", sorted(LOOPS))
def test_a_looping_cursor_ends_in_a_typed_error_in_both_hooks(monkeypatch, looping_d6, case):
    says, most = LOOPS[case]
    conn_id = _connect(monkeypatch, looping_d6, case)
    with pytest.raises(D6ResponseError, match=says) as caught:
        list(D6Hook(conn_id).iter_client_integrations())
    assert "client_integrations" in str(caught.value)  # names the endpoint
    assert requests_per_case[case] <= most

    requests_per_case[case] = 0
    with pytest.raises(D6ResponseError, match=says) as caught:
        asyncio.run(_walk_async(conn_id))
    assert "client_integrations" in str(caught.value)
    assert requests_per_case[case] <= most


def test_a_walk_that_never_repeats_still_ends(monkeypatch, looping_d6):
    # 50,000 pages is the real cap; a smaller one keeps the test quick and shows where it bites.
    monkeypatch.setattr(_limits, "MAX_PAGES", 25)
    conn_id = _connect(monkeypatch, looping_d6, "endless")
    with pytest.raises(D6ResponseError, match="25 pages"):
        list(D6Hook(conn_id).iter_client_integrations())
    assert requests_per_case["endless"] == 25
    with pytest.raises(D6ResponseError, match="25 pages"):
        asyncio.run(_walk_async(conn_id))


def test_some_empty_pages_with_a_cursor_are_still_read_to_the_end(monkeypatch, looping_d6):
    conn_id = _connect(monkeypatch, looping_d6, "sparse")
    records = list(D6Hook(conn_id).iter_client_integrations())
    assert requests_per_case["sparse"] == 30
    assert len(records) == 8 * 2  # every fourth page of 30 holds two records
    assert len(asyncio.run(_walk_async(conn_id))) == 16


def test_an_export_of_a_looping_collection_fails_and_leaves_no_file(
    monkeypatch, looping_d6, tmp_path
):
    from airflow_provider_d6.operators.storage import D6ToStorageOperator

    conn_id = _connect(monkeypatch, looping_d6, "alternate")
    target = tmp_path / "learners.jsonl"
    operator = D6ToStorageOperator(
        task_id="export", d6_conn_id=conn_id, resource="learners", school_id=1000, path=str(target)
    )
    with pytest.raises(
        D6ResponseError, match="listing learners, d6 sent a next_cursor already followed"
    ):
        operator.execute({})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary sibling
