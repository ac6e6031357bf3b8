"""Admin+ through D6Hook against the sandbox: typed records, v1 conventions, windows, gates."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from airflow_provider_d6.exceptions import (
    D6InputError,
    D6NotActivatedError,
    D6NotAuthorisedError,
    D6NotFoundError,
    D6ResponseError,
)
from airflow_provider_d6.hooks._endpoints import V1_ENDPOINTS
from airflow_provider_d6.hooks._v1 import date_chunks

ADMIN_ONLY, INACTIVE, BOTH, CLOSED = 1000, 1001, 1002, 1003


def v1_requests(control, fragment: str) -> list[dict]:
    return [r for r in control.requests() if fragment in r["path"]]


def test_lookups_are_coerced_and_global(sandbox, hook):
    groups = hook.get_ethnic_groups()
    assert groups[0] == {"id": 1, "name": "African/Black"}
    assert hook.get_ethnic_groups(4) == [{"id": 4, "name": "White"}]
    assert [s["id"] for s in hook.get_marital_statuses()] == [1, 2, 3, 4, 6, 7]
    with pytest.raises(D6NotFoundError) as caught:
        hook.get_marital_statuses(5)
    assert not caught.value.route_not_found
    assert {g["name"] for g in hook.get_genders()} == {"Male", "Female"}
    assert hook.get_languages(1) == [{"id": 1, "name": "Afrikaans"}]
    assert all(r["school_id"] is None for r in sandbox.control.requests())  # no school header
    with pytest.raises(D6InputError, match="school_id"):
        hook.iter_resource("ethnic_groups", ADMIN_ONLY)


def test_raw_mode_keeps_d6_strings(hook):
    assert hook.get_ethnic_groups(raw=True)[0] == {"id": "1", "name": "African/Black"}
    learner = next(hook.iter_adminplus_learners(ADMIN_ONLY, raw=True))
    assert isinstance(learner["id"], str) and learner["email_address"] == ""


def test_school_info_is_one_record_with_the_school_id(hook):
    info = hook.get_school_info(ADMIN_ONLY)
    assert info["school_id"] == ADMIN_ONLY
    assert isinstance(info["emis_number"], str)  # a code, never an int
    assert [*hook.iter_resource("school_info", ADMIN_ONLY)] == [info]


def test_learner_records_are_typed_and_parents_embedded(sandbox, hook):
    learners = list(hook.iter_adminplus_learners(ADMIN_ONLY, include_parents=True))
    finance = {
        lr["learner_id"]
        for lr in sandbox.control.data("learners", school_id=ADMIN_ONLY)
        if lr["status"] == "Current"
    }
    assert {lr["id"] for lr in learners} == finance
    first = learners[0]
    assert isinstance(first["grade_id"], int) and isinstance(first["ethnic_group_id"], int)
    assert isinstance(first["id_number"], str) and len(first["id_number"]) == 13
    assert first["passport_number"] is None  # d6's "" for "no value"
    parent = first["parents"][0]
    assert isinstance(parent["id"], int) and isinstance(parent["family_code"], str)
    assert parent["gross_annual_income"].count(".") == 1  # an exact decimal string
    grades = {lr["grade_id"] for lr in learners}
    two = sorted(grades)[:2]
    picked = list(hook.iter_adminplus_learners(ADMIN_ONLY, grade_id=two))
    assert picked and {lr["grade_id"] for lr in picked} == set(two)
    assert v1_requests(sandbox.control, "/learners/")[-1]["query"]["grade_id"] == ",".join(
        str(g) for g in two
    )


def test_parents_staff_and_discipline_keep_codes_and_signs(hook):
    parents = list(hook.iter_parents(ADMIN_ONLY))
    assert all(isinstance(p["id"], int) and isinstance(p["family_code"], str) for p in parents)
    staff = list(hook.iter_staff_members(ADMIN_ONLY))
    assert all(isinstance(s["marital_status_id"], str) for s in staff)  # d6 sends text there
    educators = [s for s in staff if s["is_educator"] == "Yes"]
    assert all(isinstance(s["sace_number"], str) and len(s["sace_number"]) == 7 for s in educators)
    rows = list(hook.iter_discipline(ADMIN_ONLY, from_date="2026-02-02", to_date="2026-03-20"))
    points = {row["discipline_points"] for row in rows}
    assert all(isinstance(p, int) for p in points) and min(points) < 0 < max(points)
    assert {row["staff_member_id"] for row in rows} <= {s["id"] for s in staff}


def test_no_records_is_an_empty_result(sandbox, hook):
    waitlisted = next(hook.iter_adminplus_learners(ADMIN_ONLY, status="waitlist"))
    assert list(hook.iter_absentees(ADMIN_ONLY, learner_id=waitlisted["id"])) == []
    assert list(hook.iter_parents(ADMIN_ONLY, parent_id=1)) == []


def days_of(chunks) -> Counter:
    days: Counter = Counter()
    for start, end in chunks:
        day = start
        while day <= end:
            days[day] += 1
            day += dt.timedelta(days=1)
    return days


@pytest.mark.parametrize(
    ("start", "days", "chunks"),
    [
        ("2026-03-01", 30, 1),
        ("2026-03-01", 31, 1),
        ("2026-03-01", 32, 2),
        ("2026-03-01", 62, 2),
        ("2026-03-01", 63, 3),
        ("2024-02-01", 60, 2),  # through 29 February
        ("2023-12-15", 400, 13),  # across a year end and a leap day
    ],
)
def test_windows_are_split_with_every_day_once(sandbox, hook, start, days, chunks):
    first = dt.date.fromisoformat(start)
    last = first + dt.timedelta(days=days - 1)
    rows = list(hook.iter_absentees(ADMIN_ONLY, from_date=first, to_date=last))
    sent = [
        (
            dt.date.fromisoformat(r["query"]["from_date"]),
            dt.date.fromisoformat(r["query"]["to_date"]),
        )
        for r in v1_requests(sandbox.control, "/learnerabsentees/")
    ]
    assert len(sent) == chunks
    assert all((end - begin).days <= 30 for begin, end in sent)  # the sandbox would refuse more
    covered = days_of(sent)
    assert set(covered.values()) == {1} and len(covered) == days
    assert min(covered) == first and max(covered) == last
    assert len({row["id"] for row in rows}) == len(rows)  # nothing twice at the chunk edges
    assert all(first.isoformat() <= row["absent_date"] <= last.isoformat() for row in rows)
    # The same days one at a time give the same rows: nothing lost at the edges either.
    if days <= 62:
        edge = [d for begin, end in sent for d in (begin, end)]
        for day in edge:
            one_day = list(hook.iter_absentees(ADMIN_ONLY, from_date=day, to_date=day))
            assert [r for r in rows if r["absent_date"] == day.isoformat()] == one_day


def test_date_chunks_cover_leap_years_exactly():
    chunks = date_chunks(dt.date(2024, 1, 1), dt.date(2024, 12, 31), 31)
    assert days_of(chunks) == Counter(
        {dt.date(2024, 1, 1) + dt.timedelta(n): 1 for n in range(366)}
    )
    assert dt.date(2024, 2, 29) in days_of(chunks)
    assert date_chunks(dt.date(2024, 2, 29), dt.date(2024, 2, 29), 31) == [
        (dt.date(2024, 2, 29), dt.date(2024, 2, 29))
    ]


def test_leavers_are_read_in_yearly_chunks(sandbox, hook):
    today = dt.date.today()
    left = {
        lr["learner_id"]
        for lr in sandbox.control.data("learners", school_id=ADMIN_ONLY)
        if lr["status"] == "Left"
    }
    rows = list(
        hook.iter_adminplus_learners(
            ADMIN_ONLY, status="left", since=today - dt.timedelta(days=800), until=today
        )
    )
    assert [lr["id"] for lr in rows if lr["id"] in left] == [lr["id"] for lr in rows]
    assert {lr["id"] for lr in rows} == left and len(rows) == len(left)
    sent = [r["query"] for r in v1_requests(sandbox.control, "/learners/")]
    assert len(sent) == 3 and all(q["status"] == "left" for q in sent)
    spans = [(dt.date.fromisoformat(q["since"]), dt.date.fromisoformat(q["until"])) for q in sent]
    assert set(days_of(spans).values()) == {1}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda h: h.iter_absentees(ADMIN_ONLY, from_date="2026-01-01"), "to_date"),
        (lambda h: h.iter_discipline(ADMIN_ONLY, to_date="2026-01-01"), "from_date"),
        (
            lambda h: h.iter_absentees(ADMIN_ONLY, from_date="2026-02-01", to_date="2026-01-01"),
            "to_date",
        ),
        (
            lambda h: h.iter_absentees(ADMIN_ONLY, from_date="2026-02-30", to_date="2026-03-01"),
            "from_date",
        ),
        (
            lambda h: h.iter_absentees(ADMIN_ONLY, from_date="2000-01-01", to_date="2026-01-01"),
            "from_date",
        ),
        (lambda h: h.iter_adminplus_learners(ADMIN_ONLY, since="2026-01-01"), "since"),
        (lambda h: h.iter_adminplus_learners(ADMIN_ONLY, status="gone"), "status"),
        (lambda h: h.iter_adminplus_learners(ADMIN_ONLY, grade_id=[1, "x"]), "grade_id"),
        (lambda h: h.iter_adminplus_learners(ADMIN_ONLY, grade_id=[]), "grade_id"),
        (lambda h: h.iter_parents("1000; DROP"), "school_id"),
        (lambda h: h.iter_staff_members(ADMIN_ONLY, staff_member_id=-3), "staff_member_id"),
        (lambda h: h.iter_resource("parents", ADMIN_ONLY, family_code="1"), "family_code"),
        (lambda h: h.get_ethnic_groups(0), "ethnic_group_id"),
    ],
)
def test_bad_input_is_refused_before_any_request(sandbox, hook, call, field):
    with pytest.raises(D6InputError) as caught:
        call(hook)
    assert caught.value.field == field
    assert sandbox.control.requests() == []


def test_not_activated_and_not_authorised_are_typed(hook):
    with pytest.raises(D6NotActivatedError) as caught:
        hook.get_school_info(INACTIVE)
    assert (caught.value.module, caught.value.api_type_id) == ("Admin+ API", 8)
    with pytest.raises(D6NotActivatedError) as caught:
        list(hook.iter_learner_subjects(ADMIN_ONLY))
    assert (caught.value.module, caught.value.api_type_id) == ("Curriculum+ API", 9)
    with pytest.raises(D6NotAuthorisedError):
        list(hook.iter_parents(CLOSED))


def test_refusals_are_not_retried(sandbox, hook):
    with pytest.raises(D6NotActivatedError):
        list(hook.iter_staff_members(INACTIVE))
    assert len(sandbox.control.requests()) == 1


@pytest.mark.parametrize("kind", ["route_not_found", "empty200"])
def test_wrong_route_answers_are_errors_not_empty_results(sandbox, hook, kind):
    sandbox.control.set_faults(script=[{"kind": kind, "times": 1, "path": "/api/v1/adminplus"}])
    with pytest.raises((D6NotFoundError, D6ResponseError)) as caught:
        list(hook.iter_parents(ADMIN_ONLY))
    if kind == "route_not_found":
        assert caught.value.route_not_found


def test_transient_failures_are_retried(sandbox, hook):
    sandbox.control.set_faults(
        script=[{"kind": "429", "times": 2, "path": "/api/v1/adminplus/staffmembers"}],
        retry_after="0",
    )
    assert list(hook.iter_staff_members(ADMIN_ONLY))
    assert len(sandbox.control.requests()) == 3


def test_a_version_override_moves_one_endpoint(sandbox, make_hook):
    hook = make_hook(sandbox, endpoint_versions={"parents": "v3"})
    assert list(hook.iter_staff_members(ADMIN_ONLY))  # other endpoints keep their version
    with pytest.raises(D6NotFoundError) as caught:
        list(hook.iter_parents(ADMIN_ONLY))
    # v3 is called with the later conventions: the school in the header, not the path.
    assert caught.value.route_not_found
    last = sandbox.control.requests()[-1]
    assert (last["path"], last["school_id"]) == ("/api/v3/adminplus/parents", ADMIN_ONLY)
    bad = make_hook(sandbox, endpoint_versions={"parents": "latest"})
    with pytest.raises(D6InputError, match="endpoint_versions"):
        bad.iter_parents(ADMIN_ONLY)


@pytest.mark.parametrize("resource", sorted(V1_ENDPOINTS))
def test_every_v1_resource_by_name(hook, resource):
    endpoint = V1_ENDPOINTS[resource]
    school = BOTH if endpoint.school_scoped else None
    records = list(
        hook.iter_resource(resource, school, **({"max_workers": 2} if endpoint.per_learner else {}))
    )
    assert records
    assert set(endpoint.fields) <= set(records[0])
