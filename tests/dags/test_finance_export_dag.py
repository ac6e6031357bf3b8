"""d6_finance_export: a file per activated school and resource; a school's failure is contained."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dag_helpers import task_states, xcom

pytestmark = pytest.mark.slow

RESOURCES = ("learners", "age_analysis", "financial_transactions")


def _activated_schools(handle) -> list[int]:
    return sorted(
        {
            r["school_id"]
            for r in handle.control.data("client_integrations")
            if r["activated_by_integrator"] == "Yes"
        }
    )


def test_export_writes_one_file_per_school_and_resource(dagbag, airflow_db, district, tmp_path):
    # The sandbox invoices every family on the first of each month: a day with transactions.
    day = dt.date.today().replace(day=1).isoformat()
    schools = _activated_schools(district)
    assert len(schools) >= 2

    dag_run = dagbag.dags["d6_finance_export"].test(
        run_conf={"storage_root": str(tmp_path), "export_date": day}
    )

    assert dag_run.state == "success", task_states(dag_run)
    written = sorted(
        str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
    )
    assert written == sorted(
        f"{day}/{school}/{resource}.jsonl" for school in schools for resource in RESOURCES
    )
    for school in schools:
        lines = (tmp_path / day / str(school) / "learners.jsonl").read_text().splitlines()
        learners = [json.loads(line) for line in lines]
        assert learners and {learner["learner_id"] for learner in learners} <= {
            learner["learner_id"] for learner in district.control.data("learners", school_id=school)
        }
        lines = (
            (tmp_path / day / str(school) / "financial_transactions.jsonl").read_text().splitlines()
        )
        transactions = [json.loads(line) for line in lines]
        assert transactions and {transaction["date"] for transaction in transactions} == {day}
    # Only the day asked for is requested from the Financial Transactions report.
    reports = [
        r for r in district.control.requests() if r["path"].endswith("/financialtransactions")
    ]
    assert reports and all(
        r["query"].get("start_date") == day == r["query"].get("end_date") for r in reports
    )
    assert xcom(dag_run, "summary")["files"] == [f"file://{tmp_path}/{name}" for name in written]
    # Each written file is an Asset event of its resource's alias, so downstream DAGs can be
    # scheduled on the exports.
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .filter(AssetEvent.source_dag_id == "d6_finance_export")
            .filter(AssetEvent.source_run_id == dag_run.run_id)
            .all()
        )
        assert sorted(event.asset.uri for event in events) == sorted(
            f"file://{tmp_path}/{name}" for name in written
        )
        assert {event.source_task_id for event in events} == {f"export_{r}" for r in RESOURCES}


def test_one_school_failing_does_not_stop_the_others(dagbag, airflow_db, district, tmp_path):
    schools = _activated_schools(district)
    # The first age analysis request answers with a route d6 does not serve: not retryable.
    district.control.set_faults(
        script=[
            {
                "kind": "route_not_found",
                "times": 1,
                "path": "/api/v2/finplus/debtmanagement/ageanalysis",
            }
        ]
    )

    dag_run = dagbag.dags["d6_finance_export"].test(run_conf={"storage_root": str(tmp_path)})

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    age = {index: state for (task, index), state in states.items() if task == "export_age_analysis"}
    assert sorted(age.values()) == ["failed"] + ["success"] * (len(schools) - 1)
    assert all(
        state == "success"
        for (task, _), state in states.items()
        if task in {"export_learners", "export_financial_transactions"}
    )
    assert states[("summary", -1)] == "failed"
    assert len(list(tmp_path.rglob("age_analysis.jsonl"))) == len(schools) - 1
    assert len(list(tmp_path.rglob("learners.jsonl"))) == len(schools)


def test_one_activated_school_is_summarised(dagbag, airflow_db, district, tmp_path):
    from airflow_provider_d6.hooks.d6 import D6Hook

    hook = D6Hook()
    activated = [
        r
        for r in district.control.data("client_integrations")
        if r["activated_by_integrator"] == "Yes"
    ]
    keep = activated[0]["school_id"]
    for record in activated:
        if record["school_id"] != keep:
            hook.set_client_integration_state(record["school_id"], record["api_type_id"], False)
    assert _activated_schools(district) == [keep]

    dag_run = dagbag.dags["d6_finance_export"].test(run_conf={"storage_root": str(tmp_path)})

    # With a single school Airflow hands back one result, not a list of one: the summary must
    # still count it as written.
    assert dag_run.state == "success", task_states(dag_run)
    summary = xcom(dag_run, "summary")
    assert summary["schools"] == 1
    assert [path.rsplit("/", 1)[1] for path in summary["files"]] == sorted(
        f"{resource}.jsonl" for resource in RESOURCES
    )
