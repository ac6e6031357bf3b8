"""Property tests of the response parser: whatever d6 (or a proxy in front of it) answers, callers
see either the JSON payload or a typed ``D6Error``, never a ``KeyError`` or a ``RecursionError``."""

from __future__ import annotations

import json
import pickle

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_d6.exceptions import D6Error, D6ForbiddenError, D6ResponseError
from airflow_provider_d6.hooks._parse import envelope, parse_response, single

URL = "https://integrate.d6plus.co.za/api/v2/settings/clientintegrations"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# d6 error bodies, v1 and v2, with the keys a parser looks into holding values of any type.
error_bodies = st.fixed_dictionaries(
    {},
    optional={
        "success": json_values,
        "message": json_values,
        "validation_errors": json_values,
        "error": json_values,
        "error_description": json_values,
        "data": json_values,
    },
)

html_pages = st.sampled_from(
    [
        b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body>Blocked</body></html>",
        b"  <html><body>Request rejected by the firewall</body></html>",
        b"<HEAD><TITLE>Access Denied</TITLE></HEAD>",
    ]
)


def _depth(value: object) -> int:
    """Return how deeply *value* nests lists and dicts (iteratively: it may be very deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _truncated(payload: bytes, data: st.DataObject) -> bytes:
    return payload[: data.draw(st.integers(0, max(len(payload) - 1, 0)))]


bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(lambda value: json.dumps(value).encode()),
    error_bodies.map(lambda value: json.dumps(value).encode()),
    html_pages,
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)

headers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": st.sampled_from(
                [
                    "application/json",
                    "text/html; charset=utf-8",
                    "text/plain",
                    "",
                    "application/octet-stream",
                ]
            )
            | st.text(max_size=30),
            "Retry-After": st.sampled_from(
                ["0", "1", "-5", "1e309", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", ""]
            )
            | st.text(max_size=30),
        },
    ),
)

statuses = st.one_of(
    st.sampled_from(
        [200, 201, 204, 301, 302, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504]
    ),
    st.integers(100, 599),
    st.integers(-1, 10_000),
)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    status=statuses,
    response_headers=headers,
    body=bodies,
    allow_empty=st.booleans(),
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
)
@example(status=200, response_headers=None, body=b"", allow_empty=False, method="GET")
@example(
    status=200,
    response_headers={"Content-Type": "application/json"},
    body=b'{"data": [{"school_id": 10',
    allow_empty=False,
    method="GET",
)
@example(
    status=403,
    response_headers={"Content-Type": "text/html"},
    body=b"<html>blocked</html>",
    allow_empty=False,
    method="GET",
)
@example(
    status=429, response_headers={"Retry-After": "1e309"}, body=b"", allow_empty=False, method="GET"
)
@example(
    status=400,
    response_headers=None,
    body=b'{"validation_errors": [1, 2]}',
    allow_empty=False,
    method="POST",
)
@example(
    status=200,
    response_headers=None,
    body=b"[" * 100_000 + b"]" * 100_000,
    allow_empty=False,
    method="GET",
)
def test_only_d6_errors_escape_the_parser(
    status: int,
    response_headers: dict[str, str] | None,
    body: bytes | None,
    allow_empty: bool,
    method: str,
) -> None:
    try:
        payload = parse_response(
            status, response_headers, body, method=method, url=URL, allow_empty=allow_empty
        )
    except D6Error as error:
        # The error must render, carry where it came from, and survive the trip between processes
        # (Airflow pickles exceptions from task runners and triggers).
        text = str(error)
        assert text
        assert error.status_code == status
        assert error.url == URL and URL in text
        if _depth(error.body) < 100:  # pickle itself recurses on a 1000-deep body
            clone = pickle.loads(pickle.dumps(error))
            assert type(clone) is type(error)
            assert str(clone) == text
        return
    # Anything but a 2xx is an error, whatever its body says.
    assert 200 <= status < 300, f"HTTP {status} was returned as data: {payload!r}"
    raw = (body or b"").strip()
    if not raw:
        assert payload is None
        assert allow_empty or status == 204, "an empty 200 was read as 'no data'"
    else:
        assert payload == json.loads(raw)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data(), value=json_values.filter(lambda v: isinstance(v, (dict, list)) and v))
def test_truncated_json_is_a_response_error(data: st.DataObject, value: object) -> None:
    body = json.dumps(value).encode()
    cut = _truncated(body, data)
    try:
        json.loads(cut)
    except ValueError:
        pass
    else:  # a prefix that is itself valid JSON (e.g. "[1" cut to "[1" is not, but "1" of "12" is)
        return
    try:
        parse_response(200, {"Content-Type": "application/json"}, cut, method="GET", url=URL)
    except D6ResponseError as error:
        assert error.status_code == 200
        assert "JSON" in error.message or "empty" in error.message
    else:
        raise AssertionError(f"a truncated body {cut!r} was accepted")


@settings(database=None)
@given(page=html_pages, status=st.sampled_from([403]))
def test_html_403_points_at_the_firewall(page: bytes, status: int) -> None:
    try:
        parse_response(status, {"Content-Type": "text/html"}, page, method="GET", url=URL)
    except D6ForbiddenError as error:
        assert error.from_firewall is True
        assert "firewall" in error.message
    else:
        raise AssertionError("an HTML 403 was accepted")


@settings(max_examples=200, deadline=None, database=None)
@given(
    payload=json_values
    | st.fixed_dictionaries({"data": json_values}, optional={"meta": json_values})
    | st.lists(json_values, max_size=4)
)
def test_answer_shapes_are_checked_before_use(payload: object) -> None:
    """A collection must be a list of objects and one record an object; else D6ResponseError."""
    try:
        records, meta = envelope(payload, method="GET", url=URL)
    except D6ResponseError:
        pass
    else:
        assert all(isinstance(record, dict) for record in records)
        assert isinstance(meta, dict)
    try:
        record = single(payload, method="GET", url=URL)
    except D6ResponseError:
        assert not isinstance(payload, dict)
    else:
        assert isinstance(record, dict)
