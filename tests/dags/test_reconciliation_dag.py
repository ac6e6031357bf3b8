"""d6_nightly_reconciliation: validate the desired states, plan, apply, report drift; idempotent."""

from __future__ import annotations

import importlib.util
import json

import pytest
from dag_helpers import DAGS_DIR, task_states, writes, xcom


def _module():
    spec = importlib.util.spec_from_file_location(
        "d6_nightly_reconciliation", DAGS_DIR / "d6_nightly_reconciliation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_desired_states = _module().load_desired_states
GOOD = '{"school_id": 1000, "api_type_id": 8, "state": true}'


@pytest.fixture(autouse=True)
def desired_states_dir(monkeypatch, tmp_path):
    """Read desired-states files from the test's own folder, as a deployment would configure."""
    monkeypatch.setenv("AIRFLOW__D6__DESIRED_STATES_DIR", str(tmp_path))
    return tmp_path


def _integrations(handle) -> dict[tuple[int, int], str]:
    return {
        (r["school_id"], r["api_type_id"]): r["activated_by_integrator"]
        for r in handle.control.data("client_integrations")
    }


@pytest.mark.slow
def test_reconciliation_applies_then_changes_nothing(dagbag, airflow_db, district, tmp_path):
    # Counts the writes of the documented v2 route (the live profile's v1 fallback adds one).
    district.control.configure(profile="docs")
    before = _integrations(district)
    to_activate = next(pair for pair, flag in sorted(before.items()) if flag == "No")
    to_deactivate = next(pair for pair, flag in sorted(before.items()) if flag == "Yes")
    already = next(
        pair for pair, flag in sorted(before.items()) if flag == "Yes" and pair != to_deactivate
    )
    schools = {s["school_id"] for s in district.control.data("schools")}
    unauthorised = next((school, 8) for school in sorted(schools) if (school, 8) not in before)
    desired = [
        {"school_id": to_activate[0], "api_type_id": to_activate[1], "state": True},
        {"school_id": to_deactivate[0], "api_type_id": to_deactivate[1], "state": False},
        {"school_id": already[0], "api_type_id": already[1], "state": True},
        {"school_id": unauthorised[0], "api_type_id": unauthorised[1], "state": True},
    ]
    path = tmp_path / "desired.json"
    path.write_text(json.dumps({"desired_states": desired}))
    dag = dagbag.dags["d6_nightly_reconciliation"]

    first = dag.test(run_conf={"desired_states_path": str(path)})

    assert first.state == "success", task_states(first)
    after = _integrations(district)
    assert (after[to_activate], after[to_deactivate], after[already]) == ("Yes", "No", "Yes")
    assert unauthorised not in after
    report = xcom(first, "report_drift")
    assert [
        (e["school_id"], e["api_type_id"], e["activated"]) for e in report["changed"]
    ] == sorted([(*to_activate, True), (*to_deactivate, False)])
    assert [(e["school_id"], e["api_type_id"]) for e in report["not_authorised"]] == [unauthorised]
    assert report["failed"] == []
    planned = xcom(first, "plan")
    assert planned["dry_run"] is True and len(planned["changed"]) == 2
    assert len(writes(district)) == 2

    district.control.clear_requests()
    second = dag.test(run_conf={"desired_states_path": str(path)})

    assert second.state == "success", task_states(second)
    assert writes(district) == []
    assert _integrations(district) == after
    report = xcom(second, "report_drift")
    assert (
        report["changed"] == []
        and len(report["unchanged"]) == 3
        and len(report["not_authorised"]) == 1
    )


@pytest.mark.slow
def test_a_pair_that_fails_is_reported_and_the_others_still_change(
    dagbag, airflow_db, district, tmp_path, capfd
):
    pending = sorted(pair for pair, flag in _integrations(district).items() if flag == "No")[:2]
    desired = [{"school_id": s, "api_type_id": a, "state": True} for s, a in pending]
    path = tmp_path / "desired.json"
    path.write_text(json.dumps(desired))
    # The first write is blocked by d6's firewall (an HTML 403): not retryable.
    district.control.set_faults(
        script=[
            {
                "kind": "html403",
                "times": 1,
                "method": "PATCH",
                "path": "/api/v2/settings/clientintegrations",
            }
        ]
    )

    dag_run = dagbag.dags["d6_nightly_reconciliation"].test(
        run_conf={"desired_states_path": str(path)}
    )

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert (states[("apply", -1)], states[("report_drift", -1)]) == ("failed", "failed")
    after = _integrations(district)
    assert sorted(after[pair] for pair in pending) == ["No", "Yes"]
    output = capfd.readouterr()
    assert "1 client integration(s) could not be reconciled" in output.out + output.err


@pytest.mark.slow
def test_bad_desired_states_file_fails_naming_the_entry(
    dagbag, airflow_db, district, tmp_path, capfd
):
    path = tmp_path / "desired.yaml"
    path.write_text(
        "desired_states:\n"
        "  - {school_id: 1000, api_type_id: 8, state: true}\n"
        "  - {school_id: 1002, api_type_id: 9, state: maybe}\n"
    )

    dag_run = dagbag.dags["d6_nightly_reconciliation"].test(
        run_conf={"desired_states_path": str(path)}
    )

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states[("load_desired_states", -1)] == "failed"
    assert states[("report_drift", -1)] == "upstream_failed"
    assert writes(district) == []
    output = capfd.readouterr()
    assert "desired_states[1].state" in output.out + output.err


def test_sample_file_is_valid():
    desired = load_desired_states("d6_desired_states.yaml", root=DAGS_DIR)
    assert desired and all(set(entry) == {"school_id", "api_type_id", "state"} for entry in desired)


def test_json_and_yaml_both_load(tmp_path):
    entries = [{"school_id": 1000, "api_type_id": 8, "state": True}]
    (tmp_path / "a.json").write_text(json.dumps(entries))
    (tmp_path / "b.yml").write_text("- school_id: 1000\n  api_type_id: 8\n  state: true\n")
    assert load_desired_states(tmp_path / "a.json") == entries
    assert load_desired_states(tmp_path / "b.yml") == entries


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            f'[{GOOD}, {{"school_id": "x", "api_type_id": 8, "state": true}}]',
            "desired_states[1].school_id",
        ),
        ('[{"school_id": 1000, "api_type_id": 8}]', "desired_states[0].state"),
        (
            '[{"school_id": 1000, "api_type_id": 8, "state": true, "sate": false}]',
            "desired_states[0] in",
        ),
        ('[{"school_id": true, "api_type_id": 8, "state": true}]', "desired_states[0].school_id"),
        ('[{"school_id": 1000, "api_type_id": 0, "state": true}]', "desired_states[0].api_type_id"),
        ('[{"school_id": 1000, "api_type_id": 8, "state": "yes"}]', "desired_states[0].state"),
        ("[[1000, 8, true]]", "desired_states[0]"),
        (
            f'[{GOOD}, {{"school_id": 1000, "api_type_id": 8, "state": false}}]',
            "desired_states[1]",
        ),
        ('{"schools": []}', "desired_states"),
        ('[{"school_id": 1000,', "desired_states_path"),
    ],
)
def test_bad_entries_are_named(tmp_path, text, named):
    path = tmp_path / "desired.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        load_desired_states(path)
    assert named in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"desired_states_path: .*nope\.yaml does not exist"):
        load_desired_states(tmp_path / "nope.yaml")
