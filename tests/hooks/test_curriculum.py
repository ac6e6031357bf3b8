"""Curriculum+ through D6Hook: per-learner calls and the school-wide fan-out over learners."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_d6.exceptions import D6InputError, D6NotActivatedError, D6NotFoundError

ADMIN_ONLY, BOTH = 1000, 1002
MARKS = "/api/v1/currplus/learnersubjectmarks"
PER_TERM = "/api/v1/currplus/learnersubjectsperterm"


def learner_ids(hook) -> list[int]:
    return list(dict.fromkeys(r["learner_id"] for r in hook.iter_learner_subjects(BOTH)))


def test_learner_subjects_school_wide_in_one_request(sandbox, hook):
    rows = list(hook.iter_learner_subjects(BOTH))
    assert all(isinstance(r["learner_id"], int) and isinstance(r["subject_id"], int) for r in rows)
    assert len(sandbox.control.requests()) == 1
    one = rows[0]["learner_id"]
    assert list(hook.iter_learner_subjects(BOTH, learner_id=one)) == [
        r for r in rows if r["learner_id"] == one
    ]


def test_one_learners_marks_and_terms_carry_the_learner(hook):
    learner = learner_ids(hook)[0]
    marks = list(hook.iter_learner_subject_marks(BOTH, learner))
    assert marks and all((m["learner_id"], m["school_id"]) == (learner, BOTH) for m in marks)
    assert all(
        isinstance(t["term"], int) and isinstance(t["mark"], str) for m in marks for t in m["terms"]
    )
    flat = list(hook.iter_learner_subject_marks(BOTH, learner, flatten=True))
    assert len(flat) == sum(len(m["terms"]) for m in marks)
    assert all("terms" not in row and row["learner_id"] == learner for row in flat)
    terms = list(hook.iter_learner_subjects_per_term(BOTH, learner, flatten=True))
    assert {row["term"] for row in terms} == {1, 2, 3, 4}
    assert all(isinstance(row["term_id"], int) for row in terms)
    assert all(isinstance(row["subject_group_teacher_id"], int) for row in terms)


def test_fan_out_reads_every_learner_once_in_order(sandbox, hook):
    ids = learner_ids(hook)
    expected = [row for learner in ids for row in hook.iter_learner_subject_marks(BOTH, learner)]
    sandbox.control.clear_requests()
    fan = hook.iter_school_subject_marks(BOTH, max_workers=4)
    rows = list(fan)
    assert rows == expected
    assert (fan.learners, fan.failures) == (len(ids), [])
    sent = [
        r["query"].get("learner_id")
        for r in sandbox.control.requests()
        if r["path"].startswith(MARKS)
    ]
    assert sorted(sent) == sorted(str(i) for i in ids)  # one request per learner, no repeat


def test_fan_out_flattens_per_term_rows(hook):
    ids = learner_ids(hook)[:3]
    rows = list(hook.iter_school_subjects_per_term(BOTH, learner_ids=ids, flatten=True))
    per_learner = {i: list(hook.iter_learner_subjects_per_term(BOTH, i)) for i in ids}
    assert len(rows) == sum(len(s["terms"]) for subjects in per_learner.values() for s in subjects)
    assert [r["learner_id"] for r in rows] == sorted((r["learner_id"] for r in rows), key=ids.index)


def test_one_learners_failure_is_reported_and_the_rest_go_on(sandbox, hook):
    ids = learner_ids(hook)
    total = sum(len(list(hook.iter_learner_subject_marks(BOTH, i))) for i in ids)
    # A route_not_found is never retried: exactly one learner's request fails.
    sandbox.control.set_faults(script=[{"kind": "route_not_found", "times": 1, "path": MARKS}])
    fan = hook.iter_school_subject_marks(BOTH, learner_ids=ids, max_workers=3)
    rows = list(fan)
    assert fan.learners == len(ids) and len(fan.failures) == 1
    failed = fan.failures[0]
    assert failed.learner_id in ids and failed.error == "D6NotFoundError"
    assert failed.learner_id not in {r["learner_id"] for r in rows}
    lost = len(list(hook.iter_learner_subject_marks(BOTH, failed.learner_id)))
    assert len(rows) == total - lost


def test_a_failure_is_fatal_when_asked(sandbox, hook):
    sandbox.control.set_faults(script=[{"kind": "route_not_found", "times": 1, "path": MARKS}])
    with pytest.raises(D6NotFoundError):
        list(hook.iter_school_subject_marks(BOTH, on_error="raise", max_workers=2))


def test_rate_limited_learners_are_retried_not_lost(sandbox, hook):
    ids = learner_ids(hook)
    expected = sum(len(list(hook.iter_learner_subject_marks(BOTH, i))) for i in ids)
    sandbox.control.set_faults(script=[{"kind": "429", "times": 6, "path": MARKS}], retry_after="0")
    fan = hook.iter_school_subject_marks(BOTH, max_workers=5)
    assert len(list(fan)) == expected and fan.failures == []
    statuses = [r["status"] for r in sandbox.control.requests() if r["path"].startswith(MARKS)]
    assert statuses.count(429) == 6


def test_the_fan_out_streams_and_stops_when_closed(sandbox, hook):
    ids = learner_ids(hook)
    sandbox.control.clear_requests()
    fan = hook.iter_school_subject_marks(BOTH, learner_ids=ids, max_workers=2)
    first = next(fan)
    assert first["learner_id"] == ids[0]
    fan.close()
    sent = [r for r in sandbox.control.requests() if r["path"].startswith(MARKS)]
    # At most 2 x max_workers learners are asked ahead of the consumer.
    assert 1 <= len(sent) <= 5 < len(ids)


def test_a_school_without_curriculum_plus_stops_at_once(sandbox, hook):
    with pytest.raises(D6NotActivatedError):
        list(hook.iter_school_subject_marks(ADMIN_ONLY))
    assert len(sandbox.control.requests()) == 1


def test_a_refusal_for_the_school_during_the_fan_out_is_fatal(sandbox, hook):
    ids = learner_ids(hook)
    change = {"api_type_id": 9, "state": 0}
    fan = hook.iter_school_subject_marks(BOTH, learner_ids=ids, max_workers=1)
    assert next(fan)
    reply = requests.patch(
        f"{sandbox.base_url}/v1/settings/clients/{BOTH}",
        json=change,
        headers={"HTTP-X-USERNAME": sandbox.username, "HTTP-X-PASSWORD": sandbox.password},
        timeout=10,
    )
    assert reply.status_code == 204
    with pytest.raises(D6NotActivatedError):
        list(fan)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"max_workers": 33}, "max_workers"),
        ({"max_workers": "five"}, "max_workers"),
        ({"on_error": "ignore"}, "on_error"),
        ({"learner_ids": "123"}, "learner_ids"),
        ({"learner_ids": [1, -2]}, "learner_ids"),
        ({"flatten": "sometimes"}, "flatten"),
    ],
)
def test_fan_out_input_is_checked_before_any_request(sandbox, hook, kwargs, field):
    with pytest.raises(D6InputError) as caught:
        hook.iter_school_subject_marks(BOTH, **kwargs)
    assert caught.value.field == field
    with pytest.raises(D6InputError):
        hook.iter_learner_subject_marks(BOTH, None)
    with pytest.raises(D6InputError):
        hook.iter_resource("learner_subject_marks", BOTH, learner_id=5, max_workers=2)
    assert sandbox.control.requests() == []
