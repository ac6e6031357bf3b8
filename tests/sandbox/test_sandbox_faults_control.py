"""Rate limit, every fault kind and the control API of the sandbox, over real HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from sandbox_client import (
    CLIENT_INTEGRATIONS,
    FIN,
    NOTES,
    D6Client,
    finance_school,
    pairs,
    unlisted_school,
)

from d6_sandbox.control import COLLECTIONS

# -- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_and_a_d6_body(make_sandbox):
    d6 = D6Client(make_sandbox(schools=4, learners_per_school=10, rate_limit=2))
    replies = [d6.get(CLIENT_INTEGRATIONS) for _ in range(8)]
    limited = [r for r in replies if r.status_code == 429]
    assert replies[0].status_code == 200 and limited
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json() == {"success": False, "message": "Too Many Attempts."}
    # Per credential: another credential has its own bucket (and is then refused as unknown).
    other = d6.get(
        CLIENT_INTEGRATIONS,
        auth=False,
        headers={"HTTP-X-USERNAME": "someone-else", "HTTP-X-PASSWORD": "whatever-pw"},
    )
    assert other.status_code == 401
    # The control API is never limited.
    assert all(isinstance(d6.control.requests(), list) for _ in range(10))
    assert [e["status"] for e in d6.control.requests()].count(429) == len(limited)


def test_rate_limit_can_change_at_run_time(d6):
    assert all(d6.get(CLIENT_INTEGRATIONS).status_code == 200 for _ in range(5))
    d6.control.configure(rate_limit=1)
    assert 429 in [d6.get(CLIENT_INTEGRATIONS).status_code for _ in range(5)]
    d6.control.configure(rate_limit=0)
    assert all(d6.get(CLIENT_INTEGRATIONS).status_code == 200 for _ in range(5))


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, status, content_type",
    [
        ("500", 500, "application/json"),
        ("502", 502, "text/html"),
        ("503", 503, "application/json"),
        ("429", 429, "application/json"),
        ("html403", 403, "text/html"),
        ("route_not_found", 404, "application/json"),
    ],
)
def test_error_faults_answer_without_processing(d6, kind, status, content_type):
    d6.control.set_faults(script=[{"kind": kind, "times": 1}], retry_after="0")
    reply = d6.get(CLIENT_INTEGRATIONS)
    assert reply.status_code == status
    assert reply.headers["Content-Type"].startswith(content_type)
    if kind in ("429", "503"):
        assert reply.headers["Retry-After"] == "0"
    if kind == "html403":
        assert reply.text.lstrip().startswith("<!DOCTYPE html>")
    if kind == "route_not_found":
        assert reply.json()["error"] == "route_not_found"
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200  # one time only
    assert [e["fault"] for e in d6.control.requests()] == [kind, None]


def test_empty200_fault_is_a_200_with_no_body(d6):
    d6.control.set_faults(script=[{"kind": "empty200"}])
    reply = d6.get(CLIENT_INTEGRATIONS)
    assert (reply.status_code, reply.content) == (200, b"")


def test_truncated_fault_cuts_the_real_json_short(d6):
    whole = d6.get(CLIENT_INTEGRATIONS).content
    d6.control.set_faults(script=[{"kind": "truncated"}])
    reply = d6.get(CLIENT_INTEGRATIONS)
    assert reply.status_code == 200
    assert whole.startswith(reply.content) and len(reply.content) < len(whole)
    with pytest.raises(ValueError):
        json.loads(reply.content)


def _activation(d6):
    # The v1 route: the one the default (live) profile activates through.
    pair = pairs(d6.control, activated=False)[0]
    path = f"/v1/settings/clients/{pair['school_id']}"
    return pair, path, {"api_type_id": pair["api_type_id"], "state": 1}


def _state(d6, pair):
    return next(
        r["activated_by_integrator"]
        for r in d6.control.data("client_integrations")
        if (r["school_id"], r["api_type_id"]) == (pair["school_id"], pair["api_type_id"])
    )


def test_drop_fault_applies_the_write_then_aborts_the_connection(d6):
    pair, path, body = _activation(d6)
    d6.control.set_faults(script=[{"kind": "drop", "method": "PATCH", "path": "/api/v1/settings"}])
    with pytest.raises(requests.ConnectionError):
        d6.call("PATCH", path, json=body)
    assert _state(d6, pair) == "Yes"
    assert d6.control.requests()[-1]["fault"] == "drop"


def test_drop_before_fault_aborts_without_applying_the_write(d6):
    pair, path, body = _activation(d6)
    d6.control.set_faults(script=[{"kind": "drop_before", "method": "PATCH"}])
    with pytest.raises(requests.ConnectionError):
        d6.call("PATCH", path, json=body)
    assert _state(d6, pair) == "No"
    assert d6.call("PATCH", path, json=body).status_code == 204  # the same call, unfaulted
    assert _state(d6, pair) == "Yes"


def test_slow_fault_outlasts_a_client_timeout(d6):
    d6.control.set_faults(script=[{"kind": "slow"}], slow_seconds=3)
    with pytest.raises(requests.ReadTimeout):
        d6.get(CLIENT_INTEGRATIONS, timeout=0.3)


def test_slow_after_fault_applies_the_write_while_the_client_still_waits(d6):
    pair, path, body = _activation(d6)
    d6.control.set_faults(
        script=[{"kind": "slow_after", "method": "PATCH", "path": "/api/v1/settings"}],
        slow_seconds=3,
    )
    with pytest.raises(requests.ReadTimeout):
        d6.call("PATCH", path, json=body, timeout=0.5)
    # The client gave up without an answer, yet the write is done.
    assert _state(d6, pair) == "Yes"
    entry = [e for e in d6.control.requests() if e["method"] == "PATCH"][-1]
    assert entry["fault"] == "slow_after" and entry["status"] == 204
    # The log says what the write asked for, so a test can tell which pair it changed.
    assert entry["body"] == body


def test_latency_fault_delays_but_answers(d6):
    d6.control.set_faults(script=[{"kind": "latency"}], latency_ms=50)
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    assert d6.control.requests()[-1]["fault"] == "latency"


def test_scripted_faults_match_method_and_path_prefix_and_count(d6):
    school_id = finance_school(d6.control)
    d6.control.set_faults(
        script=[{"kind": "503", "times": 2, "method": "GET", "path": f"/api{FIN}/learners"}]
    )
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    statuses = [d6.get(f"{FIN}/learners", school_id=school_id).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_random_faults_at_a_rate_over_chosen_kinds(make_sandbox):
    d6 = D6Client(
        make_sandbox(schools=4, learners_per_school=10, fault_rate=1.0, fault_kinds=["502"])
    )
    assert {d6.get(CLIENT_INTEGRATIONS).status_code for _ in range(5)} == {502}
    d6.control.clear_faults()
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    d6.control.set_faults(rate=0.5, kinds=["500"])
    statuses = [d6.get(CLIENT_INTEGRATIONS).status_code for _ in range(40)]
    assert set(statuses) == {200, 500}


def test_unknown_fault_kinds_are_refused(d6):
    with pytest.raises(RuntimeError, match="unknown fault kind"):
        d6.control.set_faults(kinds=["teapot"], rate=0.1)


# -- control API ----------------------------------------------------------------------------------


def test_authorise_and_deauthorise_play_the_school_side_of_onboarding(d6):
    school_id = unlisted_school(d6.control)
    record = d6.control.authorise(school_id, 9)
    assert (record["school_id"], record["api_type_id"], record["activated_by_integrator"]) == (
        school_id,
        9,
        "No",
    )
    listed = d6.walk(CLIENT_INTEGRATIONS, params={"school_id": school_id})
    assert [(r["api_type_id"], r["activated_by_integrator"]) for r in listed] == [(9, "No")]
    activate = {"api_type_id": 9, "state": 1}
    reply = d6.call("PATCH", f"/v1/settings/clients/{school_id}", json=activate)
    assert reply.status_code == 204
    assert d6.get(f"{FIN}/learners", school_id=school_id).status_code == 200
    assert d6.control.deauthorise(school_id, 9)["removed"] is True
    assert d6.get(f"{FIN}/learners", school_id=school_id).status_code == 401
    assert d6.walk(CLIENT_INTEGRATIONS, params={"school_id": school_id}) == []


def test_reset_returns_to_the_seeded_state(d6):
    school_id = finance_school(d6.control)
    before = d6.control.data("notes", school_id)
    person = d6.control.data("accountable_persons", school_id)[0]
    d6.call(
        "POST",
        NOTES,
        school_id=school_id,
        json={
            "accountable_person_id": person["accountable_person_id"],
            "date": before[0]["date"],
            "note_type_id": 3,
            "note": "to be forgotten",
        },
    )
    d6.control.authorise(unlisted_school(d6.control), 8)
    d6.control.set_faults(rate=1.0, kinds=["500"])
    d6.control.configure(rate_limit=1)
    d6.control.reset()
    assert d6.control.data("notes", school_id) == before
    assert d6.control.requests() == []
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
    assert d6.control.config()["rate_limit"] == 0


def test_request_log_records_what_was_asked_and_answered(d6):
    school_id = finance_school(d6.control)
    d6.get(f"{FIN}/learners", school_id=school_id, params={"limit": 5, "all_accounts": 1})
    d6.get(f"{FIN}/learners/1", school_id=school_id)
    log = d6.control.requests()
    assert [(e["method"], e["status"], e["school_id"]) for e in log] == [
        ("GET", 200, school_id),
        ("GET", 404, school_id),
    ]
    assert log[0]["query"] == {"limit": "5", "all_accounts": "1"}
    d6.control.clear_requests()
    assert d6.control.requests() == []


def test_data_serves_every_collection(d6):
    school_id = finance_school(d6.control)
    for collection in COLLECTIONS:
        records = d6.control.data(collection, school_id)
        assert isinstance(records, list) and records, collection
    everywhere = d6.control.data("learners")
    assert {r["school_id"] for r in everywhere} == {
        s["school_id"] for s in d6.control.data("schools")
    }
    with pytest.raises(RuntimeError, match="unknown collection"):
        d6.control.data("secrets")


def test_configure_rejects_unknown_or_inconsistent_settings(d6):
    with pytest.raises(RuntimeError):
        d6.control.configure(default_limit=60)
    assert d6.control.configure(latency_ms=1)["latency_ms"] == 1
    assert d6.get(CLIENT_INTEGRATIONS).status_code == 200


def test_same_seed_same_district_other_seed_other_district(make_sandbox):
    first = make_sandbox(schools=3, learners_per_school=20, seed=7).control
    again = make_sandbox(schools=3, learners_per_school=20, seed=7).control
    other = make_sandbox(schools=3, learners_per_school=20, seed=8).control
    assert first.data("learners", 1000) == again.data("learners", 1000)
    assert first.data("schools") == again.data("schools")
    assert first.data("learners", 1000) != other.data("learners", 1000)
