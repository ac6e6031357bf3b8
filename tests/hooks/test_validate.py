"""Input checks happen before any request, follow one rule per type and name the field."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.hooks._endpoints import ENDPOINTS
from airflow_provider_d6.validation import (
    MAX_ID,
    check_bool,
    check_choice,
    check_date,
    check_filters,
    check_id,
    check_int,
    check_money,
    check_note,
    is_given,
    parse_structured,
)

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


# -- one rule per type ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("1000", 1000), (" 42 ", 42), ("007", 7), (MAX_ID, MAX_ID), (str(MAX_ID), MAX_ID)],
)
def test_ids_are_ints_or_plain_ascii_digits(value, expected):
    assert check_id(value, "school_id") == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        -5,
        1.0,
        "1.0",
        "+5",
        "-5",
        "1e3",
        "0x10",
        "1_000",
        "١٢٣",  # Arabic-Indic digits
        "²",
        "１２",  # full-width digits
        "",
        "None",
        None,
        MAX_ID + 1,
        10**30,
        "9" * 5000,
        "0" * 5000 + "1",
        [1],
    ],
)
def test_ids_refuse_everything_else_naming_the_field(value):
    with pytest.raises(D6InputError) as info:
        check_id(value, "school_id")
    assert info.value.field == "school_id"
    assert "school_id" in str(info.value) and info.value.allowed


def test_optional_ids_take_what_jinja_renders_for_none():
    assert [check_id(v, "note_id", optional=True) for v in (None, "None", "", " none ")] == [
        None
    ] * 4
    assert check_id("5", "note_id", optional=True) == 5
    with pytest.raises(D6InputError, match="or None"):
        check_id("five", "note_id", optional=True)


def test_int_bounds_are_named_in_the_error():
    assert check_int("8", "max_concurrency", minimum=1) == 8
    with pytest.raises(D6InputError) as info:
        check_int(0, "max_concurrency", minimum=1)
    assert info.value.allowed == "an integer >= 1"
    with pytest.raises(D6InputError) as info:
        check_int(11, "n", minimum=1, maximum=10)
    assert info.value.allowed == "an integer 1..10"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        (" TRUE ", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("0", False),
    ],
)
def test_bools_take_true_false_yes_no_1_0(value, expected):
    assert check_bool(value, "state") is expected


@pytest.mark.parametrize("value", ["on", "off", "y", "n", "t", "maybe", "", 2, -1, 1.0, None, []])
def test_bools_refuse_everything_else(value):
    with pytest.raises(D6InputError) as info:
        check_bool(value, "state")
    assert info.value.field == "state"
    assert "true, false, yes, no, 1 or 0" in str(info.value)


def test_hook_filters_and_operators_share_the_bool_rule():
    """A value a filter refuses is refused by an operator argument too, and the other way round."""
    from airflow_provider_d6.operators.client_integrations import parse_desired_states

    for value in ("on", "y"):
        with pytest.raises(D6InputError):
            check_filters(ENDPOINTS["learners"], {"all_accounts": value})
        with pytest.raises(D6InputError):
            parse_desired_states([{"school_id": 1, "api_type_id": 8, "state": value}])
    assert check_filters(ENDPOINTS["learners"], {"all_accounts": "yes"}) == {"all_accounts": "1"}
    assert parse_desired_states([{"school_id": "1", "api_type_id": 8, "state": "yes"}]) == {
        (1, 8): True
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02", date(2026, 1, 2)),
        (" 2026-01-02 ", date(2026, 1, 2)),
        ("2026-01-02T09:30", date(2026, 1, 2)),
        ("2026-01-02 09:30:15.123456+02:00", date(2026, 1, 2)),
        ("2026-01-02T23:59:59Z", date(2026, 1, 2)),
        (datetime(2026, 1, 2, 9), date(2026, 1, 2)),
        (date(2026, 1, 2), date(2026, 1, 2)),
    ],
)
def test_dates_are_iso_days(value, expected):
    assert check_date(value, "date") == expected


@pytest.mark.parametrize(
    "value",
    [
        "20260102",
        "2026-W01-1",
        "2026-002",
        "2026-01-02Tgarbage",
        "2026-01-02T",
        "2026-13-01",
        "02/01/2026",
        "٢٠٢٦-٠١-٠٢",
        "",
        20260102,
        None,
    ],
)
def test_dates_refuse_other_iso_forms_and_garbage(value):
    with pytest.raises(D6InputError) as info:
        check_date(value, "start_date")
    assert info.value.field == "start_date" and "YYYY-MM-DD" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("150.00", "150.00"), ("150.5", "150.5"), (150, "150.00"), (Decimal("99.99"), "99.99")],
)
def test_amounts_are_exact_decimals(value, expected):
    assert check_money(value, "amount_promised") == expected


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "-1.00",
        "1.234",
        "١٥٠.00",
        "150.00x",
        "1e2",
        150.0,
        True,
        Decimal("NaN"),
        Decimal("1.234"),
    ],
)
def test_amounts_refuse_floats_rounding_and_non_ascii_digits(value):
    with pytest.raises(D6InputError) as info:
        check_money(value, "amount_promised")
    assert info.value.field == "amount_promised"


def test_choices_return_their_canonical_spelling():
    assert check_choice(" CSV ", "format", ("jsonl", "csv")) == "csv"
    params = check_filters(ENDPOINTS["promises_to_pay"], {"promise_completed": "partial"})
    assert params == {"promise_completed": "Partial"}
    with pytest.raises(D6InputError, match="jsonl, csv"):
        check_choice("xml", "format", ("jsonl", "csv"))


def test_structured_text_is_json_or_the_literal_jinja_renders():
    listed = [{"school_id": 1000, "api_type_id": 8, "state": True}]
    assert (
        parse_structured('[{"school_id": 1000, "api_type_id": 8, "state": true}]', "f", "")
        == listed
    )
    assert parse_structured(repr(listed), "f", "") == listed
    assert parse_structured(listed, "f", "") is listed


@pytest.mark.parametrize(
    "text", ["[{school_id: 1000", "[" * 100_000, "x" * 1_000_001, "__import__('os')"]
)
def test_structured_text_refuses_garbage_deep_nesting_and_huge_text(text):
    with pytest.raises(D6InputError) as info:
        parse_structured(text, "desired_states", "a list")
    assert info.value.field == "desired_states"
    assert len(str(info.value)) < 200  # the text itself is never echoed


def test_is_given_treats_jinja_none_as_missing():
    assert [is_given(v) for v in (None, "", "None", " none ", 0, False, "0")] == [
        False,
        False,
        False,
        False,
        True,
        True,
        True,
    ]
