"""Fault soak: the operators under 20% injected faults of every kind lose and duplicate nothing.

The sandbox answers one request in five with a 500, a 502 (an HTML proxy page), a 503 or a 429
(both with ``Retry-After: 0``), a dropped connection *after* processing the request (so a write
has taken effect although the client saw no answer), or a reply held beyond the client's timeout
(processed late). Each test prints its figures and attaches them with ``record_property``.

Backoffs are shortened (a hook with a short retry policy is given to each operator) and the
client throttle is fixed high: random 429s here are injected noise, not d6's real limit, and the
adaptive throttle would rightly slow down for them.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_d6._compat import AirflowException
from airflow_provider_d6.exceptions import D6Error
from airflow_provider_d6.hooks.d6 import D6Hook, RetryPolicy
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from airflow_provider_d6.operators.storage import D6ToStorageOperator

FAULT_KINDS = ["500", "502", "503", "429", "drop", "slow"]
FAULT_RATE = 0.2
CLIENT_TIMEOUT_S = 0.5
# Held past the client's timeout; the request is then processed, as a slow server would.
SLOW_HOLD_S = 1.0
MAX_RETRIES = 10
# Full-jitter backoff with a short base keeps the soak to seconds; the policy logic is unchanged.
FAST_RETRIES = RetryPolicy(base=0.02, cap=0.2, retry_after_cap=0.5)
LEARNERS = 20_000
NOTES = 200

# "slow" lets a quick local run deselect the soak (-m "not slow"); `make test` and CI run it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def connect(monkeypatch: pytest.MonkeyPatch, handle: Any, conn_id: str, **extra: Any) -> str:
    """Define *conn_id* (environment, not the database) for the sandbox *handle*."""
    extra = {
        "timeout": CLIENT_TIMEOUT_S,
        "max_retries": MAX_RETRIES,
        "requests_per_second": 2000,
        **extra,
    }
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "d6",
                "host": handle.base_url,
                "login": handle.username,
                "password": handle.password,
                "extra": extra,
            }
        ),
    )
    return conn_id


def with_fast_retries(operator: Any, max_retries: int = MAX_RETRIES) -> Any:
    """Give *operator* a hook on its own connection whose backoffs are short.

    :param max_retries: attempts per request, as the connection says (an explicit policy would
        otherwise set them)
    """
    hook = D6Hook(operator.d6_conn_id, retry_policy=FAST_RETRIES, max_retries=max_retries)
    vars(operator)["hook"] = hook
    return operator


def inject_faults(control: Any, **options: Any) -> None:
    """Start the soak's random faults (after any scripted ones in *options*)."""
    control.clear_requests()
    control.set_faults(
        rate=FAULT_RATE, kinds=FAULT_KINDS, retry_after="0", slow_seconds=SLOW_HOLD_S, **options
    )


def figures(control: Any, name: str, record_property: Any, **extra: Any) -> dict[str, Any]:
    """Print and attach the request figures of a soak (plus *extra* counts).

    Every logical call (a page, a write, a lookup) ends in exactly one request that met no fault,
    so the retries are the requests beyond those.
    """
    log = control.requests()
    faults = Counter(entry["fault"] for entry in log if entry["fault"])
    clean = sum(1 for entry in log if not entry["fault"])
    result = {
        "requests": len(log),
        "faults": sum(faults.values()),
        **{f"faults_{kind}": faults.get(kind, 0) for kind in FAULT_KINDS},
        "logical_calls": clean,
        "retries": len(log) - clean,
        **extra,
    }
    print(f"\n[soak] {name}: " + ", ".join(f"{key}={value}" for key, value in result.items()))
    for key, value in result.items():
        record_property(f"{name}.{key}", value)
    return result


def assert_met_every_fault(stats: dict[str, Any]) -> None:
    """Fail unless the soak met every fault kind, at roughly the rate asked for."""
    assert {
        kind: stats[f"faults_{kind}"] for kind in FAULT_KINDS if not stats[f"faults_{kind}"]
    } == {}
    assert stats["faults"] >= FAULT_RATE / 2 * stats["requests"], "too few faults to mean anything"


def activated(record: dict[str, Any]) -> bool:
    """Return whether a ground-truth client integration reads activated."""
    return record["activated_by_integrator"] == "Yes"


class RecordingTI:
    """Stands in for the task instance so a failing operator's report stays inspectable."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


# -- reconcile ------------------------------------------------------------------------------------


def test_reconcile_500_pairs_reaches_the_desired_state(make_sandbox, monkeypatch, record_property):
    handle = make_sandbox(schools=420, learners_per_school=1)
    control = handle.control
    pairs = control.data("client_integrations")[:500]
    assert len(pairs) == 500
    before = {(p["school_id"], p["api_type_id"]): activated(p) for p in pairs}
    rng = random.Random(500)
    desired = {pair: rng.random() < 0.5 for pair in before}
    to_change = {pair for pair, state in desired.items() if before[pair] != state}
    assert 150 < len(to_change) < 350  # a real mix of changes and no-ops

    conn_id = connect(monkeypatch, handle, "d6_soak")
    operator = with_fast_retries(
        ClientIntegrationsOperator(
            task_id="reconcile",
            d6_conn_id=conn_id,
            desired_states=[
                {"school_id": s, "api_type_id": a, "state": state}
                for (s, a), state in desired.items()
            ],
        )
    )
    inject_faults(control)
    ti = RecordingTI()
    error: AirflowException | None = None
    try:
        report = operator.execute({"ti": ti})
    except AirflowException as exc:
        error, report = exc, ti.xcom["report"]
    stats = figures(control, "reconcile", record_property)
    control.clear_faults()

    final = {
        (r["school_id"], r["api_type_id"]): activated(r)
        for r in control.data("client_integrations")
    }
    differing = {pair for pair, state in desired.items() if final.get(pair) != state}
    failed = {(e["school_id"], e["api_type_id"]) for e in report["failed"]}
    changed = {(e["school_id"], e["api_type_id"]) for e in report["changed"]}
    print(
        f"[soak] reconcile: changed={len(changed)} unchanged={len(report['unchanged'])} "
        f"failed={len(failed)} differing_after={len(differing)}"
    )
    record_property("reconcile.changed", len(changed))
    record_property("reconcile.failed", len(failed))
    record_property("reconcile.differing_after", len(differing))

    assert_met_every_fault(stats)
    assert report["not_authorised"] == []
    # The task fails listing exactly the pairs that truly were not applied, and nothing else.
    assert failed == differing
    assert changed == to_change - failed
    if error is None:
        assert differing == set()
    else:
        listed = {
            (int(s), int(a)) for s, a in re.findall(r"school (\d+)\b.*?API type (\d+)", str(error))
        }
        assert listed == failed


# -- export ---------------------------------------------------------------------------------------


def test_export_20000_learners_has_no_gap_and_no_duplicate(
    make_sandbox, monkeypatch, tmp_path, record_property
):
    # Pages of 100 (d6's page size is read from each answer): the sandbox filters a school's
    # learners on every request, so at 20,000 learners fewer, larger pages keep the soak short.
    handle = make_sandbox(schools=1, learners_per_school=LEARNERS, max_allowed_limit=100)
    control = handle.control
    school_id = control.data("schools")[0]["school_id"]
    truth = [learner["learner_id"] for learner in control.data("learners", school_id=school_id)]
    assert len(truth) == len(set(truth)) == LEARNERS

    conn_id = connect(monkeypatch, handle, "d6_soak")
    target = tmp_path / "export" / "learners.jsonl"
    operator = with_fast_retries(
        D6ToStorageOperator(
            task_id="export",
            d6_conn_id=conn_id,
            resource="learners",
            school_id=school_id,
            filters={"all_accounts": True},  # left learners too: the whole school, as in the truth
            path=str(target),
        )
    )
    inject_faults(control)
    result = operator.execute({})
    stats = figures(control, "export", record_property, records=result["records"])
    control.clear_faults()

    ids = [
        json.loads(line)["learner_id"] for line in target.read_text(encoding="utf-8").splitlines()
    ]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    missing = set(truth) - set(ids)
    assert_met_every_fault(stats)
    assert duplicates == [], f"{len(duplicates)} learner ids exported twice, e.g. {duplicates[:5]}"
    assert missing == set(), f"{len(missing)} learners missing, e.g. {sorted(missing)[:5]}"
    assert len(ids) == LEARNERS == result["records"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["learners.jsonl"]


def test_failed_export_leaves_no_file_and_keeps_the_previous_one(
    make_sandbox, monkeypatch, tmp_path
):
    handle = make_sandbox(schools=1, learners_per_school=2_000)
    control = handle.control
    school_id = control.data("schools")[0]["school_id"]
    conn_id = connect(monkeypatch, handle, "d6_soak", max_retries=3)
    learners_path = "/api/v2/finplus/debtmanagement/learners"

    def export(path: Path) -> dict[str, Any]:
        operator = D6ToStorageOperator(
            task_id="export",
            d6_conn_id=conn_id,
            resource="learners",
            school_id=school_id,
            filters={"all_accounts": True},
            path=str(path),
        )
        return with_fast_retries(operator, max_retries=3).execute({})

    good = tmp_path / "good" / "learners.jsonl"
    first = export(good)
    kept = good.read_bytes()
    assert first["records"] == 2_000

    for target in (tmp_path / "fresh" / "learners.jsonl", good):
        # Five pages get through, then every request fails: the export dies mid-way.
        control.clear_requests()
        control.set_faults(
            script=[
                {"kind": "latency", "times": 5, "path": learners_path},
                {"kind": "500", "times": 1_000, "path": learners_path},
            ],
            latency_ms=1,
        )
        with pytest.raises(D6Error):
            export(target)
        served = [e for e in control.requests() if e["status"] == 200]
        assert len(served) == 5, "the export should have failed after five pages"
        control.clear_faults()
        if target == good:
            assert good.read_bytes() == kept, "a failed run replaced the previous good export"
        else:
            assert not target.exists(), "a failed run left a partial file at the target path"
        leftovers = (
            [p.name for p in target.parent.iterdir() if p.name != "learners.jsonl"]
            if target.parent.exists()
            else []
        )
        assert leftovers == [], f"temporary files left behind: {leftovers}"


# -- debtor notes ---------------------------------------------------------------------------------


def test_200_debtor_notes_exactly_once_across_task_retries(
    make_sandbox, monkeypatch, record_property
):
    from airflow_provider_d6.operators.debtor_notes import D6DebtorNoteOperator

    handle = make_sandbox(schools=1, learners_per_school=300)
    control = handle.control
    school_id = control.data("schools")[0]["school_id"]
    persons = [
        p["accountable_person_id"] for p in control.data("accountable_persons", school_id=school_id)
    ]
    notes_before = control.data("notes", school_id=school_id)
    # Half the notes go through a connection that gives up after one attempt, so that many first
    # task attempts raise and the task is retried the way Airflow does it: a new operator with the
    # same arguments, whose execute() runs again.
    steady = connect(monkeypatch, handle, "d6_soak")
    fragile = connect(monkeypatch, handle, "d6_soak_fragile", max_retries=1)
    attempts = {steady: MAX_RETRIES, fragile: 1}
    today = date.today().isoformat()
    tag = f"soak-{random.Random().getrandbits(32):08x}"
    texts = [f"{tag} note {index:03d}" for index in range(NOTES)]

    def arguments(index: int) -> dict[str, Any]:
        internal = index % 2 == 0
        return {
            "task_id": f"note_{index}",
            "d6_conn_id": fragile if index % 4 < 2 else steady,
            "school_id": school_id,
            "action": "create",
            "accountable_person_id": persons[index % len(persons)],
            "date": today,
            "note_type_id": 3 if internal else 1,
            "communication_type_id": None if internal else 1 + index % 6,
            "note": texts[index],
        }

    def run_task(index: int) -> tuple[int, int | None]:
        """Run one note task with up to 10 tries; return (failed tries, note id)."""
        failures = 0
        for _ in range(10):
            args = arguments(index)
            operator = with_fast_retries(D6DebtorNoteOperator(**args), attempts[args["d6_conn_id"]])
            try:
                note = operator.execute({})
            except (D6Error, AirflowException):
                failures += 1
                continue
            return failures, note.get("note_id")
        return failures, None

    inject_faults(control)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run_task, range(NOTES)))
    stats = figures(
        control,
        "notes",
        record_property,
        task_retries=sum(failures for failures, _ in outcomes),
        tasks_retried=sum(1 for failures, _ in outcomes if failures),
    )
    control.clear_faults()

    notes_after = control.data("notes", school_id=school_id)
    ours = Counter(
        n["note"]
        for n in notes_after
        if (n.get("note") or "").startswith(tag) and n["status"] != "Deleted"
    )
    duplicated = sorted(text for text, count in ours.items() if count > 1)
    lost = sorted(set(texts) - set(ours))
    print(
        f"[soak] notes: created={sum(ours.values())} distinct={len(ours)} duplicated={len(duplicated)} lost={len(lost)}"
    )
    record_property("notes.created", sum(ours.values()))

    assert_met_every_fault(stats)
    assert stats["task_retries"] > 0, "no task attempt failed: the retry path was not exercised"
    assert [note_id for _, note_id in outcomes if note_id is None] == [], (
        "a task failed all its tries"
    )
    assert duplicated == [], f"{len(duplicated)} notes created twice, e.g. {duplicated[:3]}"
    assert lost == [], f"{len(lost)} notes lost, e.g. {lost[:3]}"
    assert len(notes_after) == len(notes_before) + NOTES
    returned = [note_id for _, note_id in outcomes]
    assert len(set(returned)) == NOTES, "two tasks returned the same note"


# -- Admin+ and Curriculum+ (v1): split windows and the per-learner fan-out ------------------------


def test_v1_exports_under_faults_match_a_clean_read(
    make_sandbox, monkeypatch, tmp_path, record_property
):
    # School 1002 has Admin+ and Curriculum+ activated: every v1 resource is exported, the
    # global lookups without a school. Absentees and discipline over four months are read in
    # several 31-day windows; subjects per term and marks fan out over every learner.
    from airflow_provider_d6.hooks._endpoints import V1_ENDPOINTS

    handle = make_sandbox(schools=3, learners_per_school=150)
    control, school = handle.control, 1002
    conn_id = connect(monkeypatch, handle, "d6_soak_v1")
    clean = D6Hook(conn_id, retry_policy=FAST_RETRIES, max_retries=MAX_RETRIES)
    window = {"from_date": "2026-01-05", "to_date": "2026-04-30"}
    filters = {
        "absentees": window,
        "discipline": window,
        "learner_subjects_per_term": {"max_workers": 4},
        "learner_subject_marks": {"max_workers": 4},
    }
    schools = {name: school if e.school_scoped else None for name, e in V1_ENDPOINTS.items()}
    assert len(schools) == 14

    def row_key(row: dict[str, Any]) -> str:
        return json.dumps(row, sort_keys=True, default=str)

    truth = {
        resource: sorted(
            row_key(row)
            for row in clean.iter_resource(resource, schools[resource], **filters.get(resource, {}))
        )
        for resource in schools
    }
    assert all(truth.values()), [resource for resource, rows in truth.items() if not rows]
    inject_faults(control)
    results = {}
    for resource, school_id in schools.items():
        operator = with_fast_retries(
            D6ToStorageOperator(
                task_id=f"export_{resource}",
                d6_conn_id=conn_id,
                resource=resource,
                school_id=school_id,
                filters=filters.get(resource),
                path=str(tmp_path / f"{resource}.jsonl"),
            )
        )
        results[resource] = operator.execute({})
    stats = figures(control, "v1_exports", record_property)
    control.clear_faults()

    assert_met_every_fault(stats)
    for resource in schools:
        lines = (tmp_path / f"{resource}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = sorted(row_key(json.loads(line)) for line in lines)
        assert rows == truth[resource], f"{resource}: rows lost, changed or written twice"
        assert results[resource]["records"] == len(truth[resource])
