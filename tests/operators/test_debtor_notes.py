"""D6DebtorNoteOperator on the sandbox: each action, exactly-once create, input checks."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from airflow_provider_d6.exceptions import D6InputError, D6NotFoundError
from airflow_provider_d6.operators.debtor_notes import D6DebtorNoteOperator
from tests.support import connection_json

SCHOOL = 1000  # Admin+ API activated in the seeded district, so Finance+ answers for it
NOTES_PATH = "/api/v2/finplus/debtmanagement/debtornotes/notes"
TODAY = date.today()
WRITES = {"POST", "PATCH", "PUT", "DELETE"}


@pytest.fixture
def district(make_sandbox, monkeypatch):
    """A small district with d6_default pointing at it (3 attempts per call)."""
    handle = make_sandbox(schools=2, learners_per_school=20)
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", connection_json(handle, max_retries=3))
    return handle


@pytest.fixture
def debtor(district) -> int:
    """An accountable person of SCHOOL."""
    return district.control.data("accountable_persons", school_id=SCHOOL)[0][
        "accountable_person_id"
    ]


def notes_of(control, person: int) -> list[dict[str, Any]]:
    """Return the sandbox's notes of *person* (soft-deleted ones included)."""
    return [
        n for n in control.data("notes", school_id=SCHOOL) if n["accountable_person_id"] == person
    ]


def writes(control) -> list[dict[str, Any]]:
    return [r for r in control.requests() if r["method"] in WRITES]


def create_op(debtor: int, **kwargs: Any) -> D6DebtorNoteOperator:
    fields = {
        "school_id": SCHOOL,
        "accountable_person_id": debtor,
        "date": TODAY.isoformat(),
        "note_type_id": 1,
        "communication_type_id": 2,
        "note": "Called about the March balance",
        **kwargs,
    }
    return D6DebtorNoteOperator(task_id="note", **fields)


def test_create_returns_the_stored_note(district, debtor):
    note = create_op(debtor).execute({})

    (stored,) = notes_of(district.control, debtor)[-1:]
    assert note["note_id"] == stored["note_id"]
    assert (note["note"], note["status"], note["date"]) == (
        "Called about the March balance",
        "Created",
        TODAY.isoformat(),
    )
    assert stored["communication_type_id"] == 2 and stored["note_type_id"] == 1
    json.dumps(note)


def test_running_create_twice_like_a_task_retry_leaves_one_note(district, debtor):
    before = len(notes_of(district.control, debtor))

    first = create_op(debtor).execute({})
    second = create_op(debtor).execute({})

    assert first["note_id"] == second["note_id"]
    assert len(notes_of(district.control, debtor)) == before + 1
    assert len([w for w in writes(district.control) if w["method"] == "POST"]) == 1


def test_create_under_a_dropped_connection_leaves_exactly_one_note(district, debtor):
    before = len(notes_of(district.control, debtor))
    # The POST is processed (the note is stored), then the connection is cut before the answer.
    district.control.set_faults(
        script=[{"kind": "drop", "times": 1, "method": "POST", "path": NOTES_PATH}]
    )

    note = create_op(debtor).execute({})

    after = notes_of(district.control, debtor)
    assert len(after) == before + 1
    assert note["note_id"] == after[-1]["note_id"]
    posts = [r for r in district.control.requests() if r["method"] == "POST"]
    assert [p["fault"] for p in posts] == ["drop"]  # found, not sent again


def test_create_promise_to_pay_from_rendered_templates(district, debtor):
    op = D6DebtorNoteOperator(
        task_id="promise",
        school_id="{{ params.school_id }}",
        accountable_person_id="{{ params.person }}",
        date="{{ params.day }}",
        note_type_id="2",
        communication_type_id="{{ params.channel }}",
        note="Will pay in two parts",
        promise_to_pays="{{ params.promises }}",
    )
    promises = [{"date_promised": TODAY.isoformat(), "amount_promised": "150.00"}]
    op.render_template_fields(
        {
            "params": {
                "school_id": 1000,
                "person": debtor,
                "day": TODAY.isoformat(),
                "channel": 3,
                "promises": promises,
            }
        }
    )

    note = op.execute({})

    stored = [
        p
        for p in district.control.data("promises_to_pay", school_id=SCHOOL)
        if p["note_id"] == note["note_id"]
    ]
    assert [(p["date_promised"], p["amount_promised"]) for p in stored] == [
        (TODAY.isoformat(), "150.00")
    ]
    assert note["note_type_id"] == 2 and note["communication_type_id"] == 3


def test_update_changes_only_the_given_fields(district, debtor):
    created = create_op(debtor).execute({})

    updated = D6DebtorNoteOperator(
        task_id="update",
        action="update",
        school_id=SCHOOL,
        note_id=str(created["note_id"]),
        note="Paid in full",
    ).execute({})

    (stored,) = [
        n for n in notes_of(district.control, debtor) if n["note_id"] == created["note_id"]
    ]
    assert updated["note"] == stored["note"] == "Paid in full"
    assert stored["communication_type_id"] == created["communication_type_id"]
    assert stored["date"] == created["date"]


def test_delete_then_delete_again_is_success_and_restore_brings_the_note_back(district, debtor):
    created = create_op(debtor).execute({})
    note_id = created["note_id"]

    def run(action: str) -> dict[str, Any]:
        return D6DebtorNoteOperator(
            task_id=action, action=action, school_id=SCHOOL, note_id=note_id
        ).execute({})

    def stored_status() -> str:
        return next(
            n["status"] for n in notes_of(district.control, debtor) if n["note_id"] == note_id
        )

    deleted = run("delete")
    assert deleted["note_id"] == note_id and deleted["status"] == "Deleted" == stored_status()

    district.control.clear_requests()
    again = run("delete")  # a retry after the first DELETE landed
    assert again["note_id"] == note_id and again["status"] == "Deleted" == stored_status()
    assert writes(district.control) == []  # nothing sent: the note was already deleted

    restored = run("restore")
    assert restored["note_id"] == note_id and restored["status"] == "Created" == stored_status()
    assert restored["note"] == created["note"]


def test_delete_survives_a_dropped_delete_whose_resend_answers_404(district, debtor):
    note_id = create_op(debtor).execute({})["note_id"]
    district.control.set_faults(
        script=[{"kind": "drop", "times": 1, "method": "DELETE", "path": NOTES_PATH}]
    )

    deleted = D6DebtorNoteOperator(
        task_id="d", action="delete", school_id=SCHOOL, note_id=note_id
    ).execute({})

    assert deleted["status"] == "Deleted"
    assert (
        next(n["status"] for n in notes_of(district.control, debtor) if n["note_id"] == note_id)
        == "Deleted"
    )


def test_delete_of_a_note_that_never_existed_fails(district):
    op = D6DebtorNoteOperator(task_id="d", action="delete", school_id=SCHOOL, note_id=99)

    with pytest.raises(D6NotFoundError):
        op.execute({})

    assert writes(district.control) == []


def test_restore_of_a_live_note_leaves_it_live(district, debtor):
    note_id = create_op(debtor).execute({})["note_id"]

    restored = D6DebtorNoteOperator(
        task_id="r", action="restore", school_id=SCHOOL, note_id=note_id
    ).execute({})

    assert restored["status"] == "Created"


def _days(n: int) -> str:
    return date.fromordinal(TODAY.toordinal() + n).isoformat()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"school_id": "abc"}, "school_id"),
        ({"accountable_person_id": None}, "accountable_person_id"),
        ({"accountable_person_id": "{{ missing }}"}, "accountable_person_id"),
        ({"date": f"{TODAY.year - 2}-12-31"}, "date"),
        ({"date": f"{TODAY.year + 2}-01-01"}, "date"),
        ({"date": "28/11/2026"}, "date"),
        ({"note_type_id": None}, "note_type_id"),
        ({"communication_type_id": None}, "communication_type_id"),
        ({"note_type_id": 2, "promise_to_pays": None}, "promise_to_pays"),
        ({"note_type_id": 2, "promise_to_pays": "not json"}, "promise_to_pays"),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [{"date_promised": _days(1), "amount_promised": 150.5}],
            },
            "promise_to_pays[0].amount_promised",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [
                    {"date_promised": f"{TODAY.year - 1}-06-01", "amount_promised": "10.00"}
                ],
            },
            "promise_to_pays[0].date_promised",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [
                    {"date_promised": _days(1), "amount_promised": "10.00", "amount_paid": "10.00"}
                ],
            },
            "promise_to_pays[0].amount_paid",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [
                    {
                        "date_promised": _days(1),
                        "amount_promised": "10.00",
                        "promise_completed": "Yes",
                    }
                ],
            },
            "promise_to_pays[0].promise_completed",
        ),
    ],
)
def test_bad_create_inputs_are_rejected_before_any_request(district, debtor, overrides, field):
    op = create_op(debtor)
    for name, value in overrides.items():
        setattr(
            op, name, value.replace("{{ missing }}", "") if isinstance(value, str) else value
        )  # as rendered

    with pytest.raises(D6InputError) as caught:
        op.execute({})

    assert caught.value.field == field
    assert district.control.requests() == []


def test_bad_update_inputs_are_rejected_before_any_request(district):
    nothing = D6DebtorNoteOperator(task_id="u", action="update", school_id=SCHOOL, note_id=5)
    bad_id = D6DebtorNoteOperator(
        task_id="u", action="update", school_id=SCHOOL, note_id="five", note="x"
    )

    with pytest.raises(D6InputError):
        nothing.execute({})
    with pytest.raises(D6InputError) as caught:
        bad_id.execute({})

    assert caught.value.field == "note_id"
    assert district.control.requests() == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action": "archive"}, "action"),
        ({"action": "create", "note_id": 5}, "note_id"),
        ({"action": "update"}, "note_id"),
        ({"action": "delete"}, "note_id"),
        ({"action": "restore", "note_id": 5, "note": "x"}, "note"),
        ({"action": "delete", "note_id": 5, "date": "2026-01-01"}, "date"),
    ],
)
def test_inconsistent_arguments_fail_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(D6InputError) as caught:
        D6DebtorNoteOperator(task_id="n", school_id=SCHOOL, **kwargs)

    assert caught.value.field == field


def test_template_fields_cover_every_note_field():
    assert set(D6DebtorNoteOperator.template_fields) == {
        "school_id",
        "note_id",
        "accountable_person_id",
        "date",
        "note_type_id",
        "communication_type_id",
        "note",
        "promise_to_pays",
    }
