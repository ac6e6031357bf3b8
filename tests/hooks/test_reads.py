"""Every read method of D6Hook against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from airflow_provider_d6.exceptions import D6InputError, D6NotFoundError
from airflow_provider_d6.hooks._endpoints import V2_RESOURCES
from airflow_provider_d6.hooks.d6 import RESOURCE_FIELDS, D6Hook
from tests.hooks.support import d6_requests
from tests.pairs import finance_school, pick

LEARNERS = "/v2/finplus/debtmanagement/learners"


@pytest.fixture
def small(make_sandbox):
    """Pages of at most 5 records (default 2), so 30 learners take several pages."""
    return make_sandbox(schools=4, learners_per_school=30, max_allowed_limit=5, default_limit=2)


def test_client_integrations_match_ground_truth(sandbox, hook):
    truth = sandbox.control.data("client_integrations")
    assert hook.get_client_integrations() == truth
    school_id, api_type_id = pick(sandbox.control, False)
    assert hook.get_client_integrations(school_id=school_id) == [
        r for r in truth if r["school_id"] == school_id
    ]
    assert [r["api_type_id"] for r in hook.iter_client_integrations(api_type_id=9)] == [
        r["api_type_id"] for r in truth if r["api_type_id"] == 9
    ]
    record = hook.get_client_integration(school_id, api_type_id)
    assert record["activated_by_integrator"] == "No"
    assert isinstance(record["school_id"], int) and isinstance(record["api_type_id"], int)


def test_get_client_integration_none_when_not_listed(sandbox, hook):
    school_id, api_type_id = pick(sandbox.control, True)
    sandbox.control.deauthorise(school_id, api_type_id)
    assert hook.get_client_integration(school_id, api_type_id) is None


@pytest.mark.parametrize("reverse", [False, True])
def test_pagination_walks_every_page_in_both_orders(small, make_hook, reverse):
    hook = make_hook(small)
    school_id = finance_school(small.control)
    truth = [lr["learner_id"] for lr in small.control.data("learners", school_id)]
    got = [
        lr["learner_id"]
        for lr in hook.iter_learners(school_id, all_accounts=True, reverse_order=reverse)
    ]
    assert got == (sorted(truth, reverse=True) if reverse else sorted(truth))
    log = d6_requests(small.control, LEARNERS)
    assert len(log) >= 3
    # The first page uses d6's default; every later page asks for the largest page d6 allows.
    assert "limit" not in log[0]["query"]
    assert {r["query"]["limit"] for r in log[1:]} == {"5"}
    assert all(r["query"]["reverse_order"] == ("1" if reverse else "0") for r in log)
    assert all(r["school_id"] == school_id for r in log)


def test_max_allowed_limit_remembered_per_endpoint(small, make_hook):
    hook = make_hook(small)
    school_id = finance_school(small.control)
    list(hook.iter_learners(school_id))
    small.control.clear_requests()
    list(hook.iter_learners(school_id))
    assert d6_requests(small.control, LEARNERS)[0]["query"]["limit"] == "5"
    list(hook.iter_accountable_persons(school_id))
    assert "limit" not in d6_requests(small.control, "/accountablepersons")[0]["query"]


def test_iterators_are_lazy_and_hold_one_page(small, make_hook):
    hook = make_hook(small)
    school_id = finance_school(small.control)
    records = hook.iter_learners(school_id, all_accounts=True)
    next(records)
    assert len(d6_requests(small.control, LEARNERS)) == 1


def test_schools(sandbox, hook):
    schools = list(hook.iter_schools())
    assert schools and all(isinstance(s["school_id"], int) for s in schools)
    first = hook.get_school(schools[0]["school_id"])
    assert first == schools[0]
    assert set(RESOURCE_FIELDS["schools"]) <= set(first)
    # No school header on Get Schools.
    assert all(r["school_id"] is None for r in d6_requests(sandbox.control, "/schools"))


def test_learners_and_accountable_persons(sandbox, hook):
    school_id = finance_school(sandbox.control)
    learners = list(hook.iter_learners(school_id, all_accounts=True))
    truth = sandbox.control.data("learners", school_id)
    assert len(learners) == len(truth)
    learner = hook.get_learner(school_id, learners[3]["learner_id"])
    assert learner["learner_id"] == learners[3]["learner_id"]
    assert isinstance(learner["debtor_code"], str)  # codes stay strings
    persons = list(hook.iter_accountable_persons(school_id, all_accounts=True))
    assert {p["accountable_person_id"] for p in persons} == {
        p["accountable_person_id"] for p in sandbox.control.data("accountable_persons", school_id)
    }
    person = hook.get_accountable_person(school_id, persons[0]["accountable_person_id"])
    assert person["debtor_code"] == persons[0]["debtor_code"]
    mine = list(
        hook.iter_learners(
            school_id, all_accounts=True, accountable_person_id=person["accountable_person_id"]
        )
    )
    assert mine and all(
        lr["accountable_person_id"] == person["accountable_person_id"] for lr in mine
    )


def test_lookups(sandbox, hook):
    school_id = finance_school(sandbox.control)
    assert hook.get_note_types(school_id) == sandbox.control.data("note_types")
    assert hook.get_communication_types(school_id) == sandbox.control.data("communication_types")
    assert hook.get_transaction_types(school_id) == sandbox.control.data("transaction_types")
    assert hook.get_transaction_categories(school_id) == sandbox.control.data(
        "transaction_categories", school_id
    )


def test_notes_and_promises(sandbox, hook):
    school_id = finance_school(sandbox.control)
    truth = sandbox.control.data("notes", school_id)
    live = [n for n in truth if n["status"] != "Deleted"]
    notes = list(hook.iter_notes(school_id))
    assert sorted(n["note_id"] for n in notes) == sorted(n["note_id"] for n in live)
    everything = list(
        hook.iter_notes(school_id, include_deleted=True, include_promise_to_pays=True)
    )
    assert len(everything) == len(truth)
    assert hook.get_note(school_id, notes[0]["note_id"])["note_id"] == notes[0]["note_id"]
    promises = list(hook.iter_promises_to_pay(school_id))
    assert promises, "the seeded school has promises to pay"
    promise = hook.get_promise_to_pay(school_id, promises[0]["promise_to_pay_id"])
    assert isinstance(promise["amount_promised"], str)  # money stays an exact string
    assert promise["promise_to_pay_id"] == promises[0]["promise_to_pay_id"]


def test_reports(sandbox, hook):
    school_id = finance_school(sandbox.control)
    rows = list(hook.iter_age_analysis(school_id, all_accounts=True))
    assert len(rows) == len(sandbox.control.data("age_analysis", school_id))
    assert all(isinstance(r["balance_current"], str) for r in rows)
    per_learner = list(hook.iter_age_analysis(school_id, per_learner=True))
    assert per_learner and "learner_id" in per_learner[0]
    transactions = list(hook.iter_financial_transactions(school_id, all_accounts=True))
    assert len(transactions) == len(sandbox.control.data("financial_transactions", school_id))
    start = sorted(t["date"] for t in transactions)[len(transactions) // 2]
    window = list(hook.iter_financial_transactions(school_id, all_accounts=True, start_date=start))
    assert window and all(t["date"] >= start for t in window) and len(window) < len(transactions)


@pytest.mark.parametrize("resource", sorted(V2_RESOURCES))  # v1 ones: test_adminplus*
def test_iter_resource_by_name(sandbox, hook, resource):
    school_id = finance_school(sandbox.control)
    records = list(hook.iter_resource(resource, school_id=school_id))
    assert records
    assert set(RESOURCE_FIELDS[resource]) <= set(records[0]) | {"debtor_note"}


def test_iter_resource_reads_a_school_id_as_the_catalogue_says(sandbox, hook):
    school_id = finance_school(sandbox.control)
    sandbox.control.clear_requests()
    # Not school-scoped: the one record with that id, or the resource's own school_id filter.
    schools = list(hook.iter_resource("schools", school_id=school_id))
    assert [s["school_id"] for s in schools] == [school_id]
    pairs = list(hook.iter_resource("client_integrations", school_id=school_id))
    assert pairs and {r["school_id"] for r in pairs} == {school_id}
    log = sandbox.control.requests()
    assert len(log) == 2 and all(r["school_id"] is None for r in log)  # no school header
    assert log[1]["query"]["school_id"] == str(school_id)


def test_bad_input_refused_before_any_request(sandbox, hook):
    school_id = finance_school(sandbox.control)
    sandbox.control.clear_requests()
    with pytest.raises(D6InputError, match="grade"):
        hook.iter_learners(school_id, grade=7)
    with pytest.raises(D6InputError, match="school_id"):
        hook.iter_notes(None)
    with pytest.raises(D6InputError, match="resource"):
        hook.iter_resource("invoices", school_id=school_id)
    with pytest.raises(D6InputError, match="end_date"):
        hook.iter_financial_transactions(school_id, end_date="2026-01-01")
    assert sandbox.control.requests() == []


def test_unknown_id_is_not_found(sandbox, hook):
    with pytest.raises(D6NotFoundError) as info:
        hook.get_note(finance_school(sandbox.control), 999999999)
    assert info.value.status_code == 404 and not info.value.route_not_found


def test_test_connection_reports_what_it_sees(sandbox, hook, make_sandbox, make_hook):
    # One call: the first page's count, with "+" when d6 has more pages.
    ok, message = hook.test_connection()
    assert ok and "10+ client integration" in message
    assert len(sandbox.control.requests()) == 1
    tiny = make_sandbox(schools=3, learners_per_school=5)
    ok, message = make_hook(tiny).test_connection()
    assert ok and f"{len(tiny.control.data('client_integrations'))} client integration" in message


def test_test_connection_reports_refusal(sandbox, connect):
    hook = D6Hook(connect(sandbox))
    hook.session.headers["HTTP-X-PASSWORD"] = "wrong-password-123"
    ok, message = hook.test_connection()
    assert not ok and "401" in message
