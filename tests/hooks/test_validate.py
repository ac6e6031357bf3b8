"""Input checks happen before any request and name the offending field."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.hooks._endpoints import ENDPOINTS
from airflow_provider_d6.hooks._validate import check_filters, check_note

TODAY = date(2026, 6, 15)


def test_filters_encoded_for_the_query_string():
    params = check_filters(
        ENDPOINTS["financial_transactions"],
        {
            "all_accounts": True,
            "per_learner": "false",
            "learner_id": "42",
            "start_date": datetime(2026, 1, 2, 9),
            "end_date": "2026-02-01",
            "debtor_code": None,
        },
    )
    # Booleans as 1/0 in query strings (CONTRACT [gap]); None means "not given".
    assert params == {
        "all_accounts": "1",
        "per_learner": "0",
        "learner_id": 42,
        "start_date": "2026-01-02",
        "end_date": "2026-02-01",
    }


@pytest.mark.parametrize(
    ("resource", "filters", "field"),
    [
        ("learners", {"grade": 7}, "grade"),
        ("learners", {"learner_id": "abc"}, "learner_id"),
        ("learners", {"all_accounts": "maybe"}, "all_accounts"),
        ("financial_transactions", {"end_date": "2026-01-01"}, "end_date"),
        (
            "financial_transactions",
            {"start_date": "2026-02-01", "end_date": "2026-01-01"},
            "end_date",
        ),
        ("financial_transactions", {"start_date": "01/02/2026"}, "start_date"),
        ("promises_to_pay", {"promise_completed": "Maybe"}, "promise_completed"),
        ("notes", {"year": True}, "year"),
    ],
)
def test_bad_filters_refused_with_field(resource, filters, field):
    with pytest.raises(D6InputError) as info:
        check_filters(ENDPOINTS[resource], filters)
    assert info.value.field == field
    assert field in str(info.value)


def _note(**overrides):
    fields = {
        "accountable_person_id": 5,
        "date": "2026-06-01",
        "note_type_id": 1,
        "communication_type_id": 2,
        "note": "Called about fees",
    }
    fields.update(overrides)
    return fields


def test_create_note_body():
    body = check_note(
        _note(
            note_type_id=2,
            promise_to_pays=[{"date_promised": date(2026, 7, 1), "amount_promised": "150.00"}],
        ),
        today=TODAY,
    )
    assert body == {
        "accountable_person_id": 5,
        "date": "2026-06-01",
        "note_type_id": 2,
        "communication_type_id": 2,
        "note": "Called about fees",
        "promise_to_pays": [{"date_promised": "2026-07-01", "amount_promised": "150.00"}],
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"date": "2024-12-31"}, "date"),  # before Jan 1 of last year
        ({"date": "2028-01-01"}, "date"),  # after Dec 31 of next year
        ({"accountable_person_id": None}, "accountable_person_id"),
        ({"communication_type_id": None}, "communication_type_id"),
        ({"note_type_id": 2}, "promise_to_pays"),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [{"date_promised": "2025-12-31", "amount_promised": "1.00"}],
            },
            "promise_to_pays[0].date_promised",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [{"date_promised": "2026-07-01", "amount_promised": "0.00"}],
            },
            "promise_to_pays[0].amount_promised",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [{"date_promised": "2026-07-01", "amount_promised": 10.5}],
            },
            "promise_to_pays[0].amount_promised",
        ),
        (
            {
                "note_type_id": 2,
                "promise_to_pays": [
                    {
                        "date_promised": "2026-07-01",
                        "amount_promised": "5.00",
                        "amount_paid": "5.00",
                    }
                ],
            },
            "promise_to_pays[0].amount_paid",
        ),
        ({"promise_completed": "Yes"}, "promise_completed"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_notes_refused_with_field(overrides, field):
    with pytest.raises(D6InputError) as info:
        check_note(_note(**overrides), today=TODAY)
    assert info.value.field == field


def test_internal_note_needs_no_communication_type():
    assert "communication_type_id" not in check_note(
        _note(note_type_id=3, communication_type_id=None), today=TODAY
    )


def test_update_note_partial_and_status():
    assert check_note({"status": "Created"}, today=TODAY, updating=True) == {"status": "Created"}
    with pytest.raises(D6InputError):
        check_note({"status": "Gone"}, today=TODAY, updating=True)
    with pytest.raises(D6InputError):
        check_note({}, today=TODAY, updating=True)


def test_documented_ids_coerced_money_and_codes_kept():
    from airflow_provider_d6.hooks._endpoints import coerce_ids

    note = {
        "note_id": "13000001",
        "accountable_person_id": " 42 ",
        "debtor_code": "10004",
        "note_type_id": 2,
        "communication_type_id": None,
        "unknown_field": "7",
        "promise_to_pays": [
            {"promise_to_pay_id": "9", "note_id": "13000001", "amount_promised": "150.00"}
        ],
    }
    coerce_ids(note, ENDPOINTS["notes"])
    assert note["note_id"] == 13000001 and note["accountable_person_id"] == 42
    assert note["debtor_code"] == "10004" and note["unknown_field"] == "7"
    assert note["communication_type_id"] is None
    assert note["promise_to_pays"][0] == {
        "promise_to_pay_id": 9,
        "note_id": 13000001,
        "amount_promised": "150.00",
    }
