"""The sandbox's Finance+ routes over real HTTP: happy paths and every documented error (§6)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sandbox_client import (
    FIN,
    NOTES,
    PROMISES,
    authorised_only_school,
    finance_school,
    unlisted_school,
)

SCHOOL_FIELDS = {
    "school_id",
    "school_name",
    "school_short_name",
    "ownership_type",
    "country",
    "province",
    "town",
    "suburb",
    "district",
    "district_code",
    "circuit",
    "quantile",
    "emis_number",
    "telephone_number",
    "lowest_grade",
    "highest_grade",
    "admin_email_address",
    "debtors_email_address",
    "finance_email_address",
    "physical_address",
    "postal_address",
    "has_after_school_center",
    "has_hostel",
    "uses_debit_orders",
    "uses_cashless",
}
NOTE_FIELDS = {
    "note_id",
    "accountable_person_id",
    "accountable_person",
    "debtor_code",
    "debtor_reference",
    "date",
    "note_type_id",
    "note_type",
    "communication_type_id",
    "communication_type",
    "note",
    "status",
}
PROMISE_FIELDS = {
    "promise_to_pay_id",
    "accountable_person_id",
    "accountable_person",
    "debtor_code",
    "debtor_reference",
    "date_promised",
    "amount_promised",
    "amount_paid",
    "promise_completed",
}
LEARNER_FIELDS = {
    "learner_id",
    "first_name",
    "last_name",
    "gender",
    "grade",
    "debtor_code",
    "parent1_id",
    "parent2_id",
    "accountable_person_id",
}
BUCKETS = (
    "balance_current",
    "balance_30days",
    "balance_60days",
    "balance_90days",
    "balance_120days",
    "balance_150days",
)
TODAY = dt.date.today()


@pytest.fixture
def school(d6) -> int:
    return finance_school(d6.control)


@pytest.fixture
def person(d6, school) -> dict:
    return d6.walk(f"{FIN}/accountablepersons", school_id=school)[0]


def _note(person: dict, **fields) -> dict:
    body = {
        "accountable_person_id": person["accountable_person_id"],
        "date": TODAY.isoformat(),
        "note_type_id": 1,
        "communication_type_id": 2,
        "note": "Called about fees.",
    }
    body.update(fields)
    return body


def _promise(days: int = 30, amount: str = "500.00") -> dict:
    return {
        "date_promised": (dt.date(TODAY.year, 12, 31) - dt.timedelta(days=days)).isoformat(),
        "amount_promised": amount,
    }


# -- the school header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "The HTTP-X-SCHOOLID header is required."),
        ("ten", "The HTTP-X-SCHOOLID header must be an integer."),
    ],
)
def test_finance_needs_an_integer_school_header(d6, value, message):
    reply = d6.get(f"{FIN}/learners", school_id=value)
    assert reply.status_code == 400
    assert reply.json()["validation_errors"] == {"HTTP-X-SCHOOLID": message}


def test_finance_refuses_schools_without_an_activated_integration(d6):
    for school_id in (authorised_only_school(d6.control), unlisted_school(d6.control), 99999):
        reply = d6.get(f"{FIN}/learners", school_id=school_id)
        assert reply.status_code == 401, school_id
        assert reply.json() == {"success": False, "message": "Client has not authorised access"}


# -- lookups --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/debtornotes/notetypes", {1: "Text note", 2: "Promise to pay", 3: "Internal note"}),
        ("/debtornotes/communicationtypes", {1: "SMS", 2: "E-mail", 3: "Telephonic"}),
        ("/transactiontypes", {1: "General Journal", 2: "Receipt", 3: "Payment", 4: "Deposit"}),
    ],
)
def test_lookup_lists_are_unpaginated_and_have_items(d6, school, path, expected):
    body = d6.get(FIN + path, school_id=school).json()
    assert set(body) == {"data"}
    names = {r["id"]: r["name"] for r in body["data"]}
    assert expected.items() <= names.items()
    assert d6.get(f"{FIN}{path}/2", school_id=school).json() == {"id": 2, "name": names[2]}
    missing = d6.get(f"{FIN}{path}/999", school_id=school)
    assert missing.status_code == 404 and missing.json()["success"] is False
    bad = d6.get(f"{FIN}{path}/two", school_id=school)
    assert bad.status_code == 400 and "validation_errors" in bad.json()


def test_transaction_categories_are_per_school_with_gaps_in_the_ids(d6, school):
    categories = d6.get(f"{FIN}/transactioncategories", school_id=school).json()["data"]
    ids = [c["id"] for c in categories]
    assert categories[0]["name"] == "School Fees"
    assert ids != list(range(ids[0], ids[0] + len(ids)))
    assert (
        d6.get(f"{FIN}/transactioncategories/{ids[-1]}", school_id=school).json() == categories[-1]
    )


# -- schools, people ------------------------------------------------------------------------------


def test_schools_need_no_school_header_and_list_open_schools(d6):
    schools = d6.walk(f"{FIN}/schools")
    assert all(set(s) == SCHOOL_FIELDS for s in schools)
    assert finance_school(d6.control) in {s["school_id"] for s in schools}
    assert authorised_only_school(d6.control) not in {s["school_id"] for s in schools}
    one = d6.get(f"{FIN}/schools/1000").json()
    assert one["school_name"] == "d6+ Primary School" and one["country"] == "South Africa"
    assert d6.get(f"{FIN}/schools/5").status_code == 404
    assert d6.get(f"{FIN}/schools/{authorised_only_school(d6.control)}").status_code == 401


def test_accountable_persons_by_default_are_active_accounts_only(d6, school):
    active = d6.walk(f"{FIN}/accountablepersons", school_id=school)
    everyone = d6.walk(
        f"{FIN}/accountablepersons", school_id=school, params={"all_accounts": "true"}
    )
    assert len(everyone) == len(d6.control.data("accountable_persons", school)) > len(active) > 0
    first = everyone[0]
    assert (
        d6.get(
            f"{FIN}/accountablepersons/{first['accountable_person_id']}", school_id=school
        ).json()
        == first
    )
    assert d6.get(f"{FIN}/accountablepersons/1", school_id=school).status_code == 404
    by_code = d6.walk(
        f"{FIN}/accountablepersons",
        school_id=school,
        params={"debtor_code": first["debtor_code"], "all_accounts": 1, "include_learners": 1},
    )
    assert [p["accountable_person_id"] for p in by_code] == [first["accountable_person_id"]]
    assert by_code[0]["learners"] and all(
        lr["debtor_code"] == first["debtor_code"] for lr in by_code[0]["learners"]
    )


def test_learners_carry_int_ids_and_embed_parents_on_request(d6, school):
    learners = d6.walk(
        f"{FIN}/learners",
        school_id=school,
        params={"include_parents": 1, "include_accountable_person": "1"},
    )
    assert len(d6.control.data("learners", school)) == 60
    learner = learners[0]
    assert set(learner) >= LEARNER_FIELDS
    assert isinstance(learner["learner_id"], int) and isinstance(learner["grade"], str)
    assert learner["parents"][0]["parent_id"] == learner["parent1_id"]
    assert (
        learner["accountable_person"]["accountable_person_id"] == learner["accountable_person_id"]
    )
    one = d6.get(f"{FIN}/learners/{learner['learner_id']}", school_id=school).json()
    assert one["learner_id"] == learner["learner_id"] and "parents" not in one
    assert (
        d6.get(f"{FIN}/learners/{learner['accountable_person_id']}", school_id=school).status_code
        == 404
    )
    by_parent = d6.walk(
        f"{FIN}/learners", school_id=school, params={"parent_id": learner["parent1_id"]}
    )
    assert learner["learner_id"] in {lr["learner_id"] for lr in by_parent}


def test_all_accounts_widens_learners_to_those_who_left(d6, school):
    everyone = d6.walk(f"{FIN}/learners", school_id=school, params={"all_accounts": "true"})
    assert len(everyone) == len(d6.control.data("learners", school))
    assert {lr["status"] for lr in everyone} == {"Current", "Left"}


@pytest.mark.parametrize("value", ["yes", "2", ""])
def test_query_booleans_accept_only_1_0_true_false(d6, school, value):
    reply = d6.get(f"{FIN}/learners", school_id=school, params={"all_accounts": value})
    assert reply.status_code == 400
    assert reply.json()["validation_errors"] == {
        "all_accounts": "The All accounts must be a boolean."
    }


# -- reports --------------------------------------------------------------------------------------


def test_age_analysis_agrees_with_the_financial_transactions(d6, school):
    rows = d6.walk(f"{FIN}/ageanalysis", school_id=school, params={"all_accounts": 1, "limit": 50})
    transactions = d6.walk(
        f"{FIN}/financialtransactions", school_id=school, params={"all_accounts": 1, "limit": 50}
    )
    totals: dict[int, Decimal] = {}
    for txn in transactions:
        totals[txn["accountable_person_id"]] = totals.get(
            txn["accountable_person_id"], Decimal(0)
        ) + Decimal(txn["amount"])
    assert {r["accountable_person_id"] for r in rows} == set(totals)
    for row in rows:
        assert Decimal(row["balance_total"]) == totals[row["accountable_person_id"]]
        assert sum(Decimal(row[b]) for b in BUCKETS) == Decimal(row["balance_total"])
        assert all(isinstance(row[b], str) and row[b].count(".") == 1 for b in BUCKETS)
    assert any(Decimal(r["balance_total"]) > 0 for r in rows)


def test_age_analysis_regroups_per_learner_and_category(d6, school):
    per_family = d6.walk(
        f"{FIN}/ageanalysis", school_id=school, params={"all_accounts": 1, "limit": 50}
    )
    split = d6.walk(
        f"{FIN}/ageanalysis",
        school_id=school,
        params={"all_accounts": 1, "per_learner": 1, "per_category": 1, "limit": 50},
    )
    assert len(split) > len(per_family)
    assert {"learner_id", "category_id"} <= set(split[0]) and "learner_id" not in per_family[0]
    assert sum(Decimal(r["balance_total"]) for r in split) == sum(
        Decimal(r["balance_total"]) for r in per_family
    )
    learner_id = split[0]["learner_id"]
    one = d6.walk(
        f"{FIN}/ageanalysis",
        school_id=school,
        params={"all_accounts": 1, "per_learner": 1, "learner_id": learner_id},
    )
    assert {r["learner_id"] for r in one} == {learner_id}


def test_financial_transactions_filter_by_dates_and_add_learners_on_request(d6, school):
    start = (TODAY.replace(day=1) - dt.timedelta(days=40)).replace(day=1)
    end = start + dt.timedelta(days=20)
    rows = d6.walk(
        f"{FIN}/financialtransactions",
        school_id=school,
        params={
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "per_learner": 1,
            "limit": 50,
        },
    )
    assert rows and all(start.isoformat() <= r["date"] <= end.isoformat() for r in rows)
    assert all(isinstance(r["learner_id"], int) for r in rows)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"end_date": "2025-01-31"}, "start_date"),
        ({"start_date": "2025-02-01", "end_date": "2025-01-31"}, "end_date"),
        ({"start_date": "01/02/2025"}, "start_date"),
        ({"learner_id": "x"}, "learner_id"),
        ({"per_learner": "maybe"}, "per_learner"),
    ],
)
def test_financial_transactions_validate_their_filters(d6, school, params, field):
    reply = d6.get(f"{FIN}/financialtransactions", school_id=school, params=params)
    assert reply.status_code == 400
    assert set(reply.json()["validation_errors"]) == {field}


# -- notes ----------------------------------------------------------------------------------------


def test_create_note_answers_201_with_the_note(d6, school, person):
    reply = d6.call("POST", NOTES, school_id=school, json=_note(person))
    assert reply.status_code == 201
    body = reply.json()
    assert body["success"] is True
    note = body["data"]
    assert set(note) >= NOTE_FIELDS and note["status"] == "Created"
    assert (note["note_type"], note["communication_type"]) == ("Text note", "E-mail")
    assert note["debtor_code"] == person["debtor_code"]
    fetched = d6.get(f"{NOTES}/{note['note_id']}", school_id=school).json()
    assert fetched["note"] == "Called about fees."


def test_create_promise_note_stores_its_promises(d6, school, person):
    reply = d6.call(
        "POST",
        NOTES,
        school_id=school,
        json=_note(person, note_type_id=2, promise_to_pays=[_promise(), _promise(60, "250.50")]),
    )
    assert reply.status_code == 201, reply.text
    promises = reply.json()["data"]["promise_to_pays"]
    assert [p["amount_promised"] for p in promises] == ["500.00", "250.50"]
    assert all(
        set(p) >= PROMISE_FIELDS and p["amount_paid"] == "0.00" and p["promise_completed"] == "No"
        for p in promises
    )
    listed = d6.walk(
        PROMISES,
        school_id=school,
        params={"accountable_person_id": person["accountable_person_id"]},
    )
    assert {p["promise_to_pay_id"] for p in promises} <= {p["promise_to_pay_id"] for p in listed}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"accountable_person_id": None}, "accountable_person_id"),
        ({"date": None}, "date"),
        ({"note_type_id": None}, "note_type_id"),
        ({"communication_type_id": None}, "communication_type_id"),
        ({"date": "28-11-2025"}, "date"),
        ({"date": f"{TODAY.year - 2}-12-31"}, "date"),
        ({"date": f"{TODAY.year + 2}-01-01"}, "date"),
        ({"accountable_person_id": 1}, "accountable_person_id"),
        ({"accountable_person_id": "abc"}, "accountable_person_id"),
        ({"note_type_id": 9}, "note_type_id"),
        ({"note_type_id": 2}, "promise_to_pays"),
        ({"amount_paid": "10.00"}, "amount_paid"),
        ({"promise_to_pays": [_promise()]}, "promise_to_pays"),
    ],
)
def test_create_note_refuses_each_invalid_body(d6, school, person, change, field):
    body = {k: v for k, v in {**_note(person), **change}.items() if v is not None}
    reply = d6.call("POST", NOTES, school_id=school, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"] == "Validation Failed"
    assert field in reply.json()["validation_errors"]


def test_date_windows_follow_today(d6, school, person):
    oldest = dt.date(TODAY.year - 1, 1, 1).isoformat()
    assert (
        d6.call("POST", NOTES, school_id=school, json=_note(person, date=oldest)).status_code == 201
    )
    message = d6.call("POST", NOTES, school_id=school, json=_note(person, date="2000-01-01")).json()
    assert message["validation_errors"]["date"] == (
        f"The date must be a date between {TODAY.year - 1}-01-01 and {TODAY.year + 1}-12-31."
    )
    last_year = {"date_promised": f"{TODAY.year - 1}-12-31", "amount_promised": "100.00"}
    reply = d6.call(
        "POST",
        NOTES,
        school_id=school,
        json=_note(person, note_type_id=2, promise_to_pays=[last_year]),
    )
    assert "promise_to_pays.0.date_promised" in reply.json()["validation_errors"]


@pytest.mark.parametrize(
    "item, key",
    [
        ({"amount_promised": "100.00"}, "promise_to_pays.0.date_promised"),
        ({**_promise(), "amount_promised": "-5"}, "promise_to_pays.0.amount_promised"),
        ({**_promise(), "amount_promised": "1.005"}, "promise_to_pays.0.amount_promised"),
        ({**_promise(), "amount_paid": "100.00"}, "promise_to_pays.0.amount_paid"),
        ({**_promise(), "promise_completed": "Yes"}, "promise_to_pays.0.promise_completed"),
    ],
)
def test_promise_items_are_validated(d6, school, person, item, key):
    reply = d6.call(
        "POST", NOTES, school_id=school, json=_note(person, note_type_id=2, promise_to_pays=[item])
    )
    assert reply.status_code == 400
    assert key in reply.json()["validation_errors"]


def test_internal_notes_need_no_communication_type(d6, school, person):
    body = _note(person, note_type_id=3)
    del body["communication_type_id"]
    reply = d6.call("POST", NOTES, school_id=school, json=body)
    assert reply.status_code == 201
    assert reply.json()["data"]["communication_type_id"] is None


def test_update_note_changes_fields_and_refuses_a_duplicate_promise(d6, school, person):
    created = d6.call(
        "POST",
        NOTES,
        school_id=school,
        json=_note(person, note_type_id=2, promise_to_pays=[_promise()]),
    ).json()["data"]
    path = f"{NOTES}/{created['note_id']}"
    promise_id = created["promise_to_pays"][0]["promise_to_pay_id"]
    updated = d6.call(
        "PATCH",
        path,
        school_id=school,
        json={
            "note": "Arrangement revised.",
            "promise_to_pays": [
                {"promise_to_pay_id": promise_id, "amount_promised": "450.00"},
                _promise(10, "100.00"),
            ],
        },
    )
    assert updated.status_code == 200, updated.text
    data = updated.json()["data"]
    assert data["note"] == "Arrangement revised."
    assert sorted(p["amount_promised"] for p in data["promise_to_pays"]) == ["100.00", "450.00"]
    duplicate = d6.call(
        "PATCH", path, school_id=school, json={"promise_to_pays": [_promise(10, "100.00")]}
    )
    assert duplicate.status_code == 400
    assert "promise_to_pays.0" in duplicate.json()["validation_errors"]
    assert d6.call("PATCH", path, school_id=school, json={"amount_paid": "1.00"}).status_code == 400
    assert d6.call("PATCH", path, school_id=school, json={"status": "Gone"}).status_code == 400


def test_update_note_errors_for_missing_and_unknown_ids(d6, school):
    no_id = d6.call("PATCH", NOTES, school_id=school, json={"note": "x"})
    assert (no_id.status_code, no_id.json()["message"]) == (400, "The Note ID is required")
    unknown = d6.call("PATCH", f"{NOTES}/42", school_id=school, json={"note": "x"})
    assert unknown.status_code == 404


def test_delete_note_is_soft_and_restorable(d6, school, person):
    note = d6.call("POST", NOTES, school_id=school, json=_note(person)).json()["data"]
    path = f"{NOTES}/{note['note_id']}"
    deleted = d6.call("DELETE", path, school_id=school)
    assert (deleted.status_code, deleted.json()) == (200, {"status": "Deleted"})
    again = d6.call("DELETE", path, school_id=school)
    assert again.status_code == 404
    assert again.json()["message"] == "The note does not exist or has already been deleted."
    assert note["note_id"] not in {n["note_id"] for n in d6.walk(NOTES, school_id=school)}
    with_deleted = d6.walk(NOTES, school_id=school, params={"include_deleted": "true"})
    assert {n["note_id"]: n["status"] for n in with_deleted}[note["note_id"]] == "Deleted"
    assert d6.get(path, school_id=school).status_code == 404
    assert (
        d6.get(path, school_id=school, params={"include_deleted": 1}).json()["status"] == "Deleted"
    )
    truth = {n["note_id"]: n["status"] for n in d6.control.data("notes", school)}
    assert truth[note["note_id"]] == "Deleted"
    restored = d6.call("PATCH", path, school_id=school, json={"status": "Created"})
    assert restored.status_code == 200 and restored.json()["data"]["status"] == "Created"
    assert note["note_id"] in {n["note_id"] for n in d6.walk(NOTES, school_id=school)}


def test_get_notes_filters_and_embeds_promises(d6, school, person):
    d6.call(
        "POST",
        NOTES,
        school_id=school,
        json=_note(person, note_type_id=2, promise_to_pays=[_promise(3)]),
    )
    promise_notes = d6.walk(
        NOTES,
        school_id=school,
        params={"note_type_id": 2, "include_promise_to_pays": 1, "year": TODAY.year},
    )
    assert promise_notes and all(
        n["note_type_id"] == 2 and n["date"].startswith(str(TODAY.year)) for n in promise_notes
    )
    assert all("promise_to_pays" in n for n in promise_notes)
    assert d6.get(NOTES, school_id=school, params={"year": "this"}).status_code == 400


def test_delete_promise_to_pay(d6, school, person):
    note = d6.call(
        "POST",
        NOTES,
        school_id=school,
        json=_note(person, note_type_id=2, promise_to_pays=[_promise()]),
    ).json()["data"]
    promise_id = note["promise_to_pays"][0]["promise_to_pay_id"]
    one = d6.get(
        f"{PROMISES}/{promise_id}", school_id=school, params={"include_debtor_note": 1}
    ).json()
    assert one["debtor_note"]["note_id"] == note["note_id"]
    assert d6.call("DELETE", f"{PROMISES}/{promise_id}", school_id=school).json() == {
        "status": "Deleted"
    }
    assert d6.call("DELETE", f"{PROMISES}/{promise_id}", school_id=school).status_code == 404
    assert d6.get(f"{PROMISES}/{promise_id}", school_id=school).status_code == 404
    no_id = d6.call("DELETE", PROMISES, school_id=school)
    assert (no_id.status_code, no_id.json()["message"]) == (
        400,
        "The Promise To Pay ID is required",
    )


def test_promise_filters(d6, school):
    settled = d6.walk(PROMISES, school_id=school, params={"promise_completed": "Yes"})
    assert all(
        p["promise_completed"] == "Yes" and p["amount_paid"] == p["amount_promised"]
        for p in settled
    )
    bad = d6.get(PROMISES, school_id=school, params={"promise_completed": "Maybe"})
    assert bad.status_code == 400 and "promise_completed" in bad.json()["validation_errors"]
