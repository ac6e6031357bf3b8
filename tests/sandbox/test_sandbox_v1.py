"""The sandbox's v1 Admin+ and Curriculum+ routes, over raw HTTP: shapes, quirks, rules, gates.

School layout of the seeded district (data.LAYOUT): 1000 Admin+ activated, Curriculum+ not;
1001 Admin+ authorised but not activated; 1002 both activated; 1003 nothing authorised.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sandbox_client import FIN

ADMIN_ONLY, INACTIVE, BOTH, CLOSED = 1000, 1001, 1002, 1003
A = "/v1/adminplus"
C = "/v1/currplus"


def ok(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()


def v1_error(reply, status: int) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error", "error_description"}
    return body


def test_global_lookups_need_no_school_and_answer_arrays_even_for_one(d6):
    groups = ok(d6.get(f"{A}/lookup/ethnicgroup"))
    assert [g["name"] for g in groups] == [
        "African/Black",
        "Coloured",
        "Indian",
        "White",
        "Other",
        "Asian",
    ]
    assert all(isinstance(g["id"], str) for g in groups)  # v1 sends ids as strings
    assert ok(d6.get(f"{A}/lookup/ethnicgroup/3")) == [{"id": "3", "name": "Indian"}]
    statuses = ok(d6.get(f"{A}/lookup/maritalstatus"))
    assert "5" not in {s["id"] for s in statuses}  # d6's list has no id 5
    body = v1_error(d6.get(f"{A}/lookup/maritalstatus/5"), 404)
    assert body == {"error": "Not found", "error_description": "No marital status' found"}
    assert {g["name"] for g in ok(d6.get(f"{A}/lookup/genders"))} == {"Male", "Female"}
    assert ok(d6.get(f"{A}/lookup/language/2")) == [{"id": "2", "name": "English"}]


def test_grades_are_per_school_and_match_the_learners(d6):
    grades = ok(d6.get(f"{A}/lookup/grade/{ADMIN_ONLY}"))
    ids = {g["id"] for g in grades}
    learners = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}"))
    assert {lr["grade_id"] for lr in learners} <= ids
    one = grades[1]["id"]
    assert ok(d6.get(f"{A}/lookup/grade/{ADMIN_ONLY}", params={"grade_id": one})) == [grades[1]]
    # The route needs the school: without it d6 does not know the route.
    assert v1_error(d6.get(f"{A}/lookup/grade"), 404)["error"] == "route_not_found"


def test_school_info_is_one_object_consistent_with_finance_plus(d6, small):
    info = ok(d6.get(f"{A}/school/{ADMIN_ONLY}"))
    assert isinstance(info, dict)
    school = next(s for s in small.control.data("schools") if s["school_id"] == ADMIN_ONLY)
    assert info["school_name"] == school["school_name"]
    assert info["emis_number"] == school["emis_number"]
    assert "\r\n" in info["physical_address"]
    assert isinstance(info["tuition_languages"], list) and info["tuition_languages"]


def test_learners_are_finance_plus_learners_with_their_parents(d6, small):
    finance = small.control.data("learners", school_id=ADMIN_ONLY)
    current = {lr["learner_id"]: lr for lr in finance if lr["status"] == "Current"}
    learners = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"include_parents": "1"}))
    assert {int(lr["id"]) for lr in learners} == set(current)
    parents_v2 = {
        lr["learner_id"]: lr["parents"]
        for lr in d6.walk(
            f"{FIN}/learners",
            school_id=ADMIN_ONLY,
            params={"include_parents": "1", "all_accounts": "1", "limit": 50},
        )
    }
    for learner in learners:
        match = current[int(learner["id"])]
        assert (learner["first_name"], learner["last_name"], learner["gender"]) == (
            match["first_name"],
            match["last_name"],
            match["gender"],
        )
        assert [(p["id"], p["first_name"], p["last_name"]) for p in learner["parents"]] == [
            (str(p["parent_id"]), p["first_name"], p["last_name"])
            for p in parents_v2[match["learner_id"]]
        ]
        assert learner["email_address"] == "" or "@" in learner["email_address"]
        assert len(learner["id_number"]) == 13 and learner["id_number"].isdigit()


def test_learner_filters_and_status(d6, small):
    learners = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}"))
    grade_ids = sorted({lr["grade_id"] for lr in learners})[:2]
    picked = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"grade_id": ",".join(grade_ids)}))
    assert picked and {lr["grade_id"] for lr in picked} == set(grade_ids)
    one = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"learner_id": learners[0]["id"]}))
    assert one == [learners[0]]
    waitlist = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"status": "waitlist"}))
    finance_ids = {lr["learner_id"] for lr in small.control.data("learners", school_id=ADMIN_ONLY)}
    assert waitlist and not {int(lr["id"]) for lr in waitlist} & finance_ids
    bad = v1_error(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"status": "gone"}), 400)
    assert bad["error"] == "Bad Request"


def test_leavers_window_rules(d6, small):
    today = dt.date.today()
    left = {
        lr["learner_id"]
        for lr in small.control.data("learners", school_id=ADMIN_ONLY)
        if lr["status"] == "Left"
    }
    rows = []
    for start, end in [
        (today - dt.timedelta(days=600), today - dt.timedelta(days=236)),
        (
            today - dt.timedelta(days=235),
            today,
        ),
    ]:
        params = {"status": "left", "since": start.isoformat(), "until": end.isoformat()}
        reply = d6.get(f"{A}/learners/{ADMIN_ONLY}", params=params)
        rows += reply.json() if reply.status_code == 200 else []
    assert {int(lr["id"]) for lr in rows} == left
    assert all(lr["status"] == "Left" and lr["transfer_date"] for lr in rows)
    too_long = {
        "status": "left",
        "since": (today - dt.timedelta(days=366)).isoformat(),
        "until": today.isoformat(),
    }
    assert v1_error(d6.get(f"{A}/learners/{ADMIN_ONLY}", params=too_long), 400)


@pytest.mark.parametrize("route", ["learnerabsentees", "learnerdiscipline"])
def test_date_windows_are_enforced(d6, route):
    path = f"{A}/{route}/{ADMIN_ONLY}"
    day = dt.date(2026, 3, 2)

    def window(days: int) -> dict:
        return {
            "from_date": day.isoformat(),
            "to_date": (day + dt.timedelta(days=days)).isoformat(),
        }

    assert d6.get(path, params=window(30)).status_code in (200, 404)  # 31 days inclusive
    assert "31 days" in v1_error(d6.get(path, params=window(31)), 400)["error_description"]
    assert v1_error(d6.get(path, params=window(-1)), 400)
    assert v1_error(d6.get(path, params={"from_date": day.isoformat()}), 400)
    assert v1_error(d6.get(path, params={"to_date": "2026-02-30"}), 400)
    # Neither date: d6's default window, the last month.
    default = ok(d6.get(path))
    oldest = dt.date.today() - dt.timedelta(days=30)
    field = "absent_date" if route == "learnerabsentees" else "discipline_date"
    assert default and all(row[field] >= oldest.isoformat() for row in default)


def test_absentees_are_stable_daily_rows_and_404_when_none(d6, small):
    params = {"from_date": "2026-05-04", "to_date": "2026-06-03"}
    first = ok(d6.get(f"{A}/learnerabsentees/{ADMIN_ONLY}", params=params))
    assert first == ok(d6.get(f"{A}/learnerabsentees/{ADMIN_ONLY}", params=params))
    assert len({row["id"] for row in first}) == len(first)
    assert all(dt.date.fromisoformat(row["absent_date"]).weekday() < 5 for row in first)
    waitlisted = ok(d6.get(f"{A}/learners/{ADMIN_ONLY}", params={"status": "waitlist"}))[0]
    none = d6.get(
        f"{A}/learnerabsentees/{ADMIN_ONLY}", params={**params, "learner_id": waitlisted["id"]}
    )
    assert v1_error(none, 404) == {
        "error": "Not found",
        "error_description": "No learner absentee records found",
    }


def test_discipline_points_are_signed_strings_recorded_by_staff(d6):
    params = {"from_date": "2026-02-02", "to_date": "2026-03-04"}
    rows = ok(d6.get(f"{A}/learnerdiscipline/{ADMIN_ONLY}", params=params))
    points = {int(row["discipline_points"]) for row in rows}
    assert min(points) < 0 < max(points)
    assert all(isinstance(row["discipline_points"], str) for row in rows)
    assert "" in {row["discipline_remarks"] for row in rows}
    staff = {s["id"] for s in ok(d6.get(f"{A}/staffmembers/{ADMIN_ONLY}"))}
    assert {row["staff_member_id"] for row in rows} <= staff


def test_parents_are_the_finance_plus_parents(d6, small):
    parents = ok(d6.get(f"{A}/parents/{ADMIN_ONLY}"))
    persons = small.control.data("accountable_persons", school_id=ADMIN_ONLY)
    by_id = {str(p["accountable_person_id"]): p for p in persons}
    payers = [p for p in parents if p["id"] in by_id]
    assert payers
    for parent in payers:
        person = by_id[parent["id"]]
        assert (parent["first_name"], parent["last_name"], parent["email_address"]) == (
            person["first_name"],
            person["last_name"],
            person["email_address"],
        )
        assert parent["family_code"] == person["debtor_code"]
    assert all("\r\n" in p["residential_address"] for p in parents)
    assert all(p["gross_annual_income"].endswith(".00") for p in parents)
    one = ok(d6.get(f"{A}/parents/{ADMIN_ONLY}", params={"parent_id": parents[0]["id"]}))
    assert one == [parents[0]]
    none = d6.get(f"{A}/parents/{ADMIN_ONLY}", params={"parent_id": "1"})
    assert v1_error(none, 404)["error_description"] == "No parent records found"


def test_staff_quirks(d6):
    staff = ok(d6.get(f"{A}/staffmembers/{ADMIN_ONLY}"))
    statuses = {s["marital_status_id"] for s in staff}
    assert statuses and not any(s.isdigit() for s in statuses)  # text in an "id" field
    educators = [s for s in staff if s["is_educator"] == "Yes"]
    assert educators and all(len(s["sace_number"]) == 7 for s in educators)
    assert all(s["sace_number"] == "" for s in staff if s["is_educator"] == "No")
    assert "ethnic_group_id" not in staff[0] and "ethnic_group" in staff[0]


def test_learner_subjects_school_wide_is_every_learner(d6):
    rows = ok(d6.get(f"{C}/learnersubjects/{BOTH}"))
    assert all(isinstance(r["subject_id"], int) for r in rows)  # unquoted, unlike other ids
    assert all(isinstance(r["learner_id"], str) for r in rows)
    learner = rows[0]["learner_id"]
    own = ok(d6.get(f"{C}/learnersubjects/{BOTH}", params={"learner_id": learner}))
    assert own == [r for r in rows if r["learner_id"] == learner]
    current = {lr["id"] for lr in ok(d6.get(f"{A}/learners/{BOTH}"))}
    assert {r["learner_id"] for r in rows} == current


def test_per_term_and_marks_need_a_learner_and_omit_it(d6):
    learner = ok(d6.get(f"{C}/learnersubjects/{BOTH}"))[0]["learner_id"]
    for route in ("learnersubjectsperterm", "learnersubjectmarks"):
        assert v1_error(d6.get(f"{C}/{route}/{BOTH}"), 400)["error"] == "Bad Request"
    terms = ok(d6.get(f"{C}/learnersubjectsperterm/{BOTH}", params={"learner_id": learner}))
    assert "learner_id" not in terms[0]
    assert [t["term"] for t in terms[0]["terms"]] == ["1", "2", "3", "4"]
    assert all(isinstance(t["term_id"], int) for t in terms[0]["terms"])
    marks = ok(d6.get(f"{C}/learnersubjectmarks/{BOTH}", params={"learner_id": learner}))
    assert "learner_id" not in marks[0]
    assert {m["subject_id"] for m in marks} == {t["subject_id"] for t in terms}
    for mark in (t["mark"] for m in marks for t in m["terms"]):
        whole, _, cents = mark.partition(".")
        assert whole.isdigit() and len(cents) == 2
    none = d6.get(f"{C}/learnersubjectmarks/{BOTH}", params={"learner_id": "1"})
    assert v1_error(none, 404)["error_description"] == "No subject mark records found"


def test_module_and_school_gates(d6):
    body = v1_error(d6.get(f"{A}/learners/{INACTIVE}"), 403)
    assert body["error"] == "Integration not activated"
    assert "Admin+ API" in body["error_description"]
    body = v1_error(d6.get(f"{C}/learnersubjects/{ADMIN_ONLY}"), 403)
    assert "Curriculum+ API" in body["error_description"]
    assert v1_error(d6.get(f"{A}/school/{CLOSED}"), 401) == {
        "error": "Unauthorized",
        "error_description": "Client access not authorised",
    }
    assert v1_error(d6.get(f"{A}/school/99999"), 401)["error"] == "Unauthorized"


def test_activating_a_module_opens_it(d6):
    assert d6.get(f"{C}/learnersubjects/{ADMIN_ONLY}").status_code == 403
    change = d6.call(
        "PATCH", f"/v1/settings/clients/{ADMIN_ONLY}", json={"api_type_id": 9, "state": 1}
    )
    assert change.status_code == 204
    assert ok(d6.get(f"{C}/learnersubjects/{ADMIN_ONLY}"))


def test_routes_need_the_version_and_the_school(d6):
    assert v1_error(d6.get(f"{A}/learners"), 404)["error"] == "route_not_found"
    assert v1_error(d6.get(f"{A}/pupils/{ADMIN_ONLY}"), 404)["error"] == "route_not_found"
    # Without the version d6 answers 200 with an empty body: a trap that looks like "no data".
    trap = d6.get("/adminplus/learners", params={"school_id": ADMIN_ONLY})
    assert trap.status_code == 200 and trap.content == b""
