"""Cursor pagination of the sandbox (CONTRACT.md §2): walks in both orders, limits, cursors."""

from __future__ import annotations

import pytest
from sandbox_client import CLIENT_INTEGRATIONS, FIN, decode_cursor, finance_school


def _walk_pages(d6, path, *, school_id=None, **params):
    pages = []
    query = dict(params)
    while True:
        body = d6.get(path, school_id=school_id, params=query).json()
        pages.append(body)
        if "next_cursor" not in body["meta"]:
            return pages
        query["cursor"] = body["meta"]["next_cursor"]


@pytest.mark.parametrize(
    "path, key, finance, limit",
    [
        (CLIENT_INTEGRATIONS, None, False, 3),
        (f"{FIN}/learners", "learner_id", True, 7),
        (f"{FIN}/debtornotes/notes", "note_id", True, 4),
        (f"{FIN}/financialtransactions", "transaction_id", True, 50),
    ],
)
def test_walk_both_orders_yields_every_record_once(d6, path, key, finance, limit):
    school_id = finance_school(d6.control) if finance else None

    def ident(record):
        return record[key] if key else (record["school_id"], record["api_type_id"])

    forward_pages = _walk_pages(d6, path, school_id=school_id, limit=limit)
    backward_pages = _walk_pages(d6, path, school_id=school_id, limit=limit, reverse_order=1)
    forward = [ident(r) for page in forward_pages for r in page["data"]]
    backward = [ident(r) for page in backward_pages for r in page["data"]]
    assert len(forward_pages) >= 3
    assert len(forward) == len(set(forward))
    assert forward == sorted(forward)
    assert backward == forward[::-1]
    assert all(len(page["data"]) == limit for page in forward_pages[:-1])
    assert all(
        page["meta"]["limit"] == limit and page["meta"]["max_allowed_limit"] == 50
        for page in forward_pages
    )
    assert "next_cursor" not in forward_pages[-1]["meta"]


def test_cursors_are_base64_json_with_an_id_and_direction(d6):
    meta = d6.get(CLIENT_INTEGRATIONS, params={"limit": 2}).json()["meta"]
    assert set(decode_cursor(meta["next_cursor"])) == {"id", "_backward"}
    back = d6.get(CLIENT_INTEGRATIONS, params={"limit": 2, "reverse_order": "true"}).json()["meta"]
    assert decode_cursor(back["next_cursor"])["_backward"] is True


def test_default_page_size_and_settings_come_from_meta(d6):
    body = d6.get(CLIENT_INTEGRATIONS).json()
    assert body["meta"]["limit"] == 10 and len(body["data"]) == 10
    d6.control.configure(max_allowed_limit=5, default_limit=3)
    body = d6.get(CLIENT_INTEGRATIONS).json()
    assert (body["meta"]["limit"], body["meta"]["max_allowed_limit"], len(body["data"])) == (
        3,
        5,
        3,
    )


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 51}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"reverse_order": "backwards"}, "reverse_order"),
    ],
)
def test_bad_pagination_parameters_are_400(d6, params, field):
    reply = d6.get(CLIENT_INTEGRATIONS, params=params)
    assert reply.status_code == 400
    assert set(reply.json()["validation_errors"]) == {field}


def test_an_empty_collection_is_one_page_without_a_cursor(d6):
    body = d6.get(CLIENT_INTEGRATIONS, params={"school_id": 424242}).json()
    assert body == {"data": [], "meta": {"limit": 10, "max_allowed_limit": 50}}
