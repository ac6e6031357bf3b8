"""Client integration state changes and debtor note writes against the sandbox."""

from __future__ import annotations

from datetime import date

import pytest

from airflow_provider_d6.exceptions import D6NotAuthorisedError, D6NotFoundError
from airflow_provider_d6.hooks.d6 import client_integration_record
from tests.hooks.support import d6_requests
from tests.pairs import finance_school, pick

V2_STATE = "/v2/settings/clientintegrations"
NOTES_PATH = "/api/v2/finplus/debtmanagement/debtornotes/notes"


def _state(control, school_id, api_type_id):
    for record in control.data("client_integrations", school_id):
        if record["api_type_id"] == api_type_id:
            return record["activated_by_integrator"]
    return None


def test_activate_then_again_is_idempotent_then_deactivate(sandbox, hook):
    sandbox.control.configure(profile="docs")  # the documented v2 route and its 200/400 answers
    school_id, api_type_id = pick(sandbox.control, False)
    record = hook.set_client_integration_state(school_id, api_type_id, True)
    assert record["activated_by_integrator"] == "Yes" and record["school_id"] == school_id
    assert _state(sandbox.control, school_id, api_type_id) == "Yes"
    # d6 answers 400 "Integration already activated": that is success, with the record.
    again = hook.set_client_integration_state(school_id, api_type_id, True)
    assert again["activated_by_integrator"] == "Yes"
    assert [r["status"] for r in d6_requests(sandbox.control, V2_STATE, "PATCH")] == [200, 400]
    off = hook.set_client_integration_state(school_id, api_type_id, False)
    assert off["activated_by_integrator"] == "No"
    assert _state(sandbox.control, school_id, api_type_id) == "No"


def test_not_authorised_school_raises(sandbox, hook):
    school_id, api_type_id = pick(sandbox.control, None)
    with pytest.raises(D6NotAuthorisedError) as info:
        hook.set_client_integration_state(school_id, api_type_id, True)
    assert info.value.status_code == 401


def test_v1_fallback_on_route_not_found_and_204(sandbox, make_hook):
    assert sandbox.control.config()["profile"] == "live"  # the default: v2 answers route_not_found
    hook = make_hook(sandbox)
    inactive = [
        p
        for p in sandbox.control.data("client_integrations")
        if p["activated_by_integrator"] == "No"
    ]
    first, second = inactive[:2]
    record = hook.set_client_integration_state(first["school_id"], first["api_type_id"], True)
    assert record["activated_by_integrator"] == "Yes"
    assert _state(sandbox.control, first["school_id"], first["api_type_id"]) == "Yes"
    log = [
        (r["method"], r["path"].removeprefix("/api"), r["status"])
        for r in sandbox.control.requests()
    ]
    v1 = f"/v1/settings/clients/{first['school_id']}"
    # v2 PATCH answered route_not_found, v1 PATCH answered 204 (empty), then the record was re-read.
    assert log[:3] == [("PATCH", V2_STATE, 404), ("PATCH", v1, 204), ("GET", V2_STATE, 200)]
    # The fallback is remembered: the next change goes straight to v1.
    sandbox.control.clear_requests()
    hook.set_client_integration_state(second["school_id"], second["api_type_id"], True)
    first_call = sandbox.control.requests()[0]
    assert f"{first_call['method']} {first_call['path']}" == (
        f"PATCH /api/v1/settings/clients/{second['school_id']}"
    )
    # v1 re-activation of an active pair also succeeds (idempotent).
    assert (
        hook.set_client_integration_state(first["school_id"], first["api_type_id"], True)[
            "activated_by_integrator"
        ]
        == "Yes"
    )


def test_v1_route_configured(sandbox, make_hook):
    hook = make_hook(sandbox, extra={"activation_route": "v1"})
    school_id, api_type_id = pick(sandbox.control, True)
    assert (
        hook.set_client_integration_state(school_id, api_type_id, False)["activated_by_integrator"]
        == "No"
    )
    assert {r["path"] for r in d6_requests(sandbox.control, f"/clients/{school_id}")} == {
        f"/api/v1/settings/clients/{school_id}"
    }
    assert not d6_requests(sandbox.control, V2_STATE, "PATCH")


def test_v2_route_configured_does_not_fall_back(sandbox, make_hook):
    sandbox.control.configure(v2_activation_route=False)
    hook = make_hook(sandbox, activation_route="v2")
    school_id, api_type_id = pick(sandbox.control, False)
    with pytest.raises(D6NotFoundError) as info:
        hook.set_client_integration_state(school_id, api_type_id, True)
    assert info.value.route_not_found


def test_string_ids_from_v1_coerced(sandbox, hook):
    v1_records = hook.run("v1/settings/clients")
    assert isinstance(v1_records[0]["api_type_id"], str)  # v1 really sends strings
    records = [client_integration_record(r) for r in v1_records]
    assert records == sandbox.control.data("client_integrations")


def _note_fields(control, school_id):
    person = control.data("accountable_persons", school_id)[0]
    return {
        "accountable_person_id": person["accountable_person_id"],
        "date": date.today(),
        "note_type_id": 1,
        "communication_type_id": 2,
        "note": f"Hook test note {person['accountable_person_id']}",
    }


def _notes_like(control, school_id, fields):
    return [
        n
        for n in control.data("notes", school_id)
        if n["accountable_person_id"] == fields["accountable_person_id"]
        and n["note"] == fields["note"]
        and n["status"] != "Deleted"
    ]


def test_note_lifecycle(sandbox, hook):
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id)
    note = hook.create_note(school_id, **fields)
    assert isinstance(note["note_id"], int) and note["note"] == fields["note"]
    assert hook.find_note(school_id, **fields)["note_id"] == note["note_id"]
    assert hook.get_note(school_id, note["note_id"])["date"] == fields["date"].isoformat()
    updated = hook.update_note(school_id, note["note_id"], note="Parent will pay on Friday")
    assert updated["note"] == "Parent will pay on Friday"
    assert hook.delete_note(school_id, note["note_id"]) == {"status": "Deleted"}
    with pytest.raises(D6NotFoundError):
        hook.get_note(school_id, note["note_id"])
    assert {n["note_id"]: n["status"] for n in sandbox.control.data("notes", school_id)}[
        note["note_id"]
    ] == "Deleted"
    restored = hook.restore_note(school_id, note["note_id"])
    assert restored["status"] == "Created"


def test_promise_to_pay_note_and_delete_promise(sandbox, hook):
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id) | {"note_type_id": 2}
    promised = date(date.today().year + 1, 1, 15)
    note = hook.create_note(
        school_id,
        **fields,
        promise_to_pays=[{"date_promised": promised, "amount_promised": "250.00"}],
    )
    promises = [
        p
        for p in hook.iter_promises_to_pay(
            school_id, accountable_person_id=fields["accountable_person_id"]
        )
        if p["date_promised"] == promised.isoformat()
    ]
    assert len(promises) == 1 and promises[0]["amount_promised"] == "250.00"
    assert promises[0].get("note_id", note["note_id"]) == note["note_id"]
    assert hook.delete_promise_to_pay(school_id, promises[0]["promise_to_pay_id"]) == {
        "status": "Deleted"
    }
    with pytest.raises(D6NotFoundError):
        hook.get_promise_to_pay(school_id, promises[0]["promise_to_pay_id"])


def test_create_note_if_not_exists_returns_existing(sandbox, hook):
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id)
    first = hook.create_note(school_id, **fields, if_not_exists=True)
    second = hook.create_note(school_id, **fields, if_not_exists=True)
    assert first["note_id"] == second["note_id"]
    assert len(d6_requests(sandbox.control, NOTES_PATH, "POST")) == 1
    assert len(_notes_like(sandbox.control, school_id, fields)) == 1


def test_create_note_if_not_exists_returns_one_shape_created_or_found(sandbox, hook):
    # A caller reading note["promise_to_pays"] must not break on the run that finds the note.
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id)
    created = hook.create_note(school_id, **fields, if_not_exists=True)
    found = hook.create_note(school_id, **fields, if_not_exists=True)
    assert found["note_id"] == created["note_id"]
    assert created["promise_to_pays"] == found["promise_to_pays"] == []
    assert sorted(found) == sorted(created)
    promise = {"date_promised": date.today(), "amount_promised": "120.00"}
    fields.update(note_type_id=2, note="Promise shape test", promise_to_pays=[promise])
    created = hook.create_note(school_id, **fields, if_not_exists=True)
    found = hook.create_note(school_id, **fields, if_not_exists=True)
    assert found["note_id"] == created["note_id"]
    assert [p["amount_promised"] for p in found["promise_to_pays"]] == ["120.00"]
    assert found["promise_to_pays"] == created["promise_to_pays"]


@pytest.mark.parametrize("kind", ["drop", "502", "drop_before"])
def test_ambiguous_create_note_failure_leaves_exactly_one_note(sandbox, hook, kind):
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id)
    sandbox.control.set_faults(
        script=[{"kind": kind, "times": 1, "method": "POST", "path": NOTES_PATH}]
    )
    note = hook.create_note(school_id, **fields)
    assert note["note"] == fields["note"]
    matching = _notes_like(sandbox.control, school_id, fields)
    assert [n["note_id"] for n in matching] == [note["note_id"]]
    posts = d6_requests(sandbox.control, NOTES_PATH, "POST")
    # "drop" landed, so it was found and not sent again; the others had not landed and were re-sent once.
    assert len(posts) == (1 if kind == "drop" else 2)


def test_dropped_delete_that_landed_is_success(sandbox, hook):
    school_id = finance_school(sandbox.control)
    note = hook.create_note(school_id, **_note_fields(sandbox.control, school_id))
    path = f"{NOTES_PATH}/{note['note_id']}"
    sandbox.control.set_faults(
        script=[{"kind": "drop", "times": 1, "method": "DELETE", "path": path}]
    )
    # The delete took effect but the answer was lost: not re-sent (that would answer 404).
    assert hook.delete_note(school_id, note["note_id"]) == {"status": "Deleted"}
    assert len(d6_requests(sandbox.control, path, "DELETE")) == 1
    statuses = {n["note_id"]: n["status"] for n in sandbox.control.data("notes", school_id)}
    assert statuses[note["note_id"]] == "Deleted"
    # Deleting it again is d6's 404, not a silent success.
    with pytest.raises(D6NotFoundError):
        hook.delete_note(school_id, note["note_id"])


def _wait_until_answered(control, path, method, count):
    """Wait (bounded) until the sandbox has finished *count* requests to *path*."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = [r for r in d6_requests(control, path, method) if r["status"] is not None]
        if len(done) >= count:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("late_by", [1.0, 4.0])
def test_timed_out_create_note_is_never_sent_again(sandbox, make_hook, late_by):
    """A Create Note that d6 applies after the client's timeout must not be written twice."""
    from airflow_provider_d6.exceptions import D6ConnectionError

    hook = make_hook(sandbox, timeout=0.5)
    school_id = finance_school(sandbox.control)
    fields = _note_fields(sandbox.control, school_id)
    sandbox.control.set_faults(
        script=[{"kind": "slow", "times": 1, "method": "POST", "path": NOTES_PATH}],
        slow_seconds=late_by,
    )
    try:
        note = hook.create_note(school_id, **fields)
    except D6ConnectionError as err:
        # d6 took longer than the hook watches for: the outcome is unknown, so it must fail
        # rather than send the note a second time.
        assert late_by > 1.0 and err.timed_out and "not sent again" in str(err)
        note = None
    _wait_until_answered(sandbox.control, NOTES_PATH, "POST", 1)
    assert len(d6_requests(sandbox.control, NOTES_PATH, "POST")) == 1
    matching = _notes_like(sandbox.control, school_id, fields)
    assert len(matching) == 1
    if note is not None:
        assert note["note_id"] == matching[0]["note_id"]
    # A retry of the task (if_not_exists) finds the note that landed late instead of writing.
    again = hook.create_note(school_id, **fields, if_not_exists=True)
    assert again["note_id"] == matching[0]["note_id"]
    assert len(d6_requests(sandbox.control, NOTES_PATH, "POST")) == 1
