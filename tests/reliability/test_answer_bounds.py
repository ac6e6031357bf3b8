"""d6's answers cannot exhaust time, memory or disk: looping cursors, huge bodies, endless replies.

A hostile d6 on loopback (real HTTP) answers as the case in the URL's first path segment says:

- cursors that repeat, alternate, cycle, lead only to empty pages or never end: both hooks end
  the walk with a ``D6ResponseError`` naming the endpoint, after a bounded number of requests,
  and an export built on the sync hook fails the same way and leaves no file behind;
- a 300 MB body, one that declares 300 MB, and a gzip bomb (1 MiB on the wire, 1 GiB decoded):
  both hooks refuse them after reading about ``max_response_bytes``, with the peak memory of the
  call (tracemalloc) a small multiple of the cap;
- a reply that drips one byte at a time (in the headers or the body) and an endless chunked
  body: both hooks cut them off at the connection's ``timeout`` with a ``D6ConnectionError``
  that says it timed out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_d6.exceptions import D6ConnectionError, D6ResponseError
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


# -- answers too large or too slow -------------------------------------------------------------

CAP = 1 << 20  # max_response_bytes in these cases: 1 MiB
HUGE = 300 * 1000 * 1000  # the 300 MB body
CHUNK = b'{"pad": "' + b"x" * (64 * 1024 - 12) + b'"},'
PAGE_HEAD = b'{"meta": {"limit": 50}, "data": ['


def _gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)  # whitespace: a JSON document that only ever gets longer
    parts = [compressor.compress(b'{"data": [' + block)]
    parts += [compressor.compress(block) for _ in range(size // len(block) - 1)]
    return b"".join(parts) + compressor.compress(b"]}") + compressor.flush()


PAGE = json.dumps(
    {"data": [{**_record(n), "notes": "n" * 900} for n in range(50)], "meta": {"limit": 50}}
).encode()


def _compress(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


GZIP = 16 + zlib.MAX_WBITS
ENCODED = {
    "gzip": _compress(PAGE, GZIP),
    # gzip allows several members one after the other; the body is their concatenation.
    "gzip-two-members": _compress(PAGE[:1000], GZIP) + _compress(PAGE[1000:], GZIP),
    "deflate": _compress(PAGE, zlib.MAX_WBITS),  # zlib-wrapped, as the standard says
    "rawdeflate": _compress(PAGE, -zlib.MAX_WBITS),  # what some servers send as "deflate"
    "br": b"not really brotli",  # an encoding the hooks never ask for
    "gzip-corrupt": b"\x1f\x8b\x08\x00" + b"\xff" * 64,  # a gzip header, then garbage
}


@functools.cache
def _bomb() -> bytes:
    return _gzip_bomb(1 << 30)  # made once, when first served


sent: Counter[str] = Counter()  # body bytes each case managed to send


async def _stream(request: web.BaseRequest, response: web.StreamResponse, chunks: Any) -> None:
    case = request.path.strip("/").split("/")[0]
    try:
        await response.prepare(request)
        for chunk, pause in chunks:
            await response.write(chunk)
            sent[case] += len(chunk)
            if pause:
                await asyncio.sleep(pause)
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client hung up: what it must do


async def _huge(request: web.BaseRequest) -> web.StreamResponse:
    case = request.path.strip("/").split("/")[0]
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if case == "big":  # 300 MB, chunked, no length announced
        chunks: Any = ((CHUNK, 0) for _ in range(HUGE // len(CHUNK)))
    elif case == "declared":  # says 300 MB up front
        response.content_length = HUGE
        chunks = ((CHUNK, 0) for _ in range(HUGE // len(CHUNK)))
    elif case == "bomb":
        bomb = _bomb()
        response.headers["Content-Encoding"] = "gzip"
        response.content_length = len(bomb)
        chunks = ((bomb[i : i + 65536], 0) for i in range(0, len(bomb), 65536))
    elif case == "drip":  # one byte every 0.2 s: each read is well inside the timeout
        response.content_length = 10_000
        chunks = ((b" ", 0.2) for _ in range(10_000))
    elif case == "endless":  # a chunked body that never ends
        chunks = ((b"[" if i == 0 else b" " * 512, 0.02) for i in range(10**9))
    elif case == "headers":  # the status line and headers themselves arrive a byte at a time
        assert request.transport is not None
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 10**5:
            request.transport.write(bytes([byte]))
            await asyncio.sleep(0.2)
        return response
    elif case in ENCODED:  # a good page, compressed as d6 (or a proxy) may send it
        response.headers["Content-Encoding"] = case.split("-")[0].replace("raw", "")
        chunks = [(ENCODED[case], 0)]
    else:
        raise AssertionError(case)
    await _stream(request, response, chunks)
    return response


@pytest.fixture(scope="module")
def huge_d6():
    with serve(_huge) as url:
        yield url


@pytest.fixture(scope="module")
def huge_tls_d6():
    """The same server over TLS (d6 itself is https-only), and its CA file."""
    from d6_sandbox.tls import make_tls_context

    context, ca_path = make_tls_context()
    with serve(_huge, context) as url:
        yield url, ca_path


def _hostile_hooks(monkeypatch, url: str, case: str, **extra: Any) -> str:
    conn_id = f"d6_bounds_{case}"
    conn = {"conn_type": "d6", "host": f"{url}/{case}/api", "login": "bounds-user"}
    conn.update(password=PASSWORD, extra={"max_attempts": 1, **extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    sent[case] = 0
    return conn_id


def _peak_of(call: Callable[[], Any]) -> tuple[BaseException, int]:
    """Run *call* (which must raise) under tracemalloc; return the error and the peak bytes."""
    tracemalloc.start()
    try:
        call()
    except Exception as err:  # noqa: BLE001 - returned for the test to check
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("the call did not fail")


def _sync_call(conn_id: str) -> Callable[[], Any]:
    hook = D6Hook(conn_id)
    hook.settings  # read the connection (and build the session) before measuring  # noqa: B018
    return hook.get_client_integrations


def _async_call(conn_id: str) -> Callable[[], Any]:
    async def call() -> Any:
        async with D6AsyncHook(conn_id) as hook:
            return await hook.get_client_integration(1000, 8)

    return lambda: asyncio.run(call())


@pytest.mark.parametrize("hook", ["sync", "async"])
@pytest.mark.parametrize("case", ["big", "declared", "bomb"])
def test_an_answer_over_max_response_bytes_is_refused_with_bounded_memory(
    monkeypatch, huge_d6, case, hook
):
    if case == "bomb":
        _bomb()  # made before measuring: the server runs in this process
    conn_id = _hostile_hooks(monkeypatch, huge_d6, case, max_response_bytes=CAP)
    call = (_sync_call if hook == "sync" else _async_call)(conn_id)
    error, peak = _peak_of(call)
    assert isinstance(error, D6ResponseError), repr(error)
    print(f"{case}/{hook}: peak {peak:,} bytes, server sent {sent[case]:,}: {error}")
    assert "max_response_bytes=1,048,576" in str(error)
    if case == "declared":
        assert "declared 300,000,000 bytes" in str(error)
    # The cap, one decoded step and one read chunk, with room for the test's own bookkeeping:
    # reading the answer whole would take 300 MB (1 GiB for the bomb).
    assert peak < 8 * CAP, f"peak {peak:,} bytes"
    # What the server got out before the hook hung up: the cap plus socket buffers, not 300 MB.
    assert sent[case] < 64 * CAP


def test_the_default_cap_is_far_above_the_sandboxs_largest_page(sandbox):
    import requests

    headers = {"HTTP-X-USERNAME": sandbox.username, "HTTP-X-PASSWORD": sandbox.password}
    largest = 0
    for path, school in [
        ("/v2/finplus/debtmanagement/learners", "1000"),
        ("/v2/finplus/debtmanagement/accountablepersons", "1000"),
        ("/v2/settings/clientintegrations", None),
    ]:
        sent_headers = {**headers, **({"HTTP-X-SCHOOLID": school} if school else {})}
        first = requests.get(sandbox.base_url + path, headers=sent_headers, timeout=30)
        most = first.json()["meta"]["max_allowed_limit"]  # the largest page d6 allows
        page = requests.get(
            sandbox.base_url + path, params={"limit": most}, headers=sent_headers, timeout=30
        )
        assert page.status_code == 200, (path, page.status_code)
        largest = max(largest, len(page.content))
    print(f"largest sandbox page: {largest:,} bytes")
    assert largest > 10_000  # real pages were measured
    assert 100 * largest < _limits.DEFAULT_MAX_RESPONSE_BYTES


@pytest.mark.parametrize("hook", ["sync", "async"])
@pytest.mark.parametrize("case", ["drip", "endless", "headers"])
def test_a_reply_that_never_completes_is_cut_off_at_the_timeout(monkeypatch, huge_d6, case, hook):
    conn_id = _hostile_hooks(monkeypatch, huge_d6, case, timeout=1)
    call = (_sync_call if hook == "sync" else _async_call)(conn_id)
    started = time.monotonic()
    with pytest.raises(D6ConnectionError) as caught:
        call()
    assert caught.value.timed_out
    # Only that it ended, and not minutes later: the server would go on for hours.
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("hook", ["sync", "async"])
@pytest.mark.parametrize("case", ["drip", "headers"])
def test_a_dripping_reply_over_tls_is_cut_off_at_the_timeout(monkeypatch, huge_tls_d6, case, hook):
    url, ca_path = huge_tls_d6
    conn_id = _hostile_hooks(monkeypatch, url, case, timeout=1, verify=ca_path)
    call = (_sync_call if hook == "sync" else _async_call)(conn_id)
    started = time.monotonic()
    with pytest.raises(D6ConnectionError) as caught:
        call()
    assert caught.value.timed_out
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("case", ["gzip-corrupt"])
def test_a_body_that_does_not_decompress_is_a_response_error(monkeypatch, huge_d6, case):
    conn_id = _hostile_hooks(monkeypatch, huge_d6, case)
    with pytest.raises(D6ResponseError, match="could not be decompressed"):
        D6Hook(conn_id).get_client_integrations()
    with pytest.raises(D6ResponseError, match="could not be decompressed"):
        _async_call(conn_id)()


@pytest.mark.parametrize("case", ["gzip", "gzip-two-members", "deflate", "rawdeflate"])
def test_compressed_answers_within_the_cap_are_decoded_by_both_hooks(monkeypatch, huge_d6, case):
    conn_id = _hostile_hooks(monkeypatch, huge_d6, case, max_response_bytes=65536)
    assert len(PAGE) < 65536 < len(PAGE) * 4  # the decoded page fits; four would not
    records = D6Hook(conn_id).get_client_integrations()
    assert [r["learner_id"] for r in records] == [5000 + n for n in range(50)]
    assert _async_call(conn_id)() == records[0]


def test_an_encoding_the_hooks_did_not_ask_for_is_refused(monkeypatch, huge_d6):
    conn_id = _hostile_hooks(monkeypatch, huge_d6, "br")
    with pytest.raises(D6ResponseError, match="Content-Encoding 'br'"):
        D6Hook(conn_id).get_client_integrations()
    with pytest.raises(D6ResponseError, match="Content-Encoding 'br'"):
        _async_call(conn_id)()
