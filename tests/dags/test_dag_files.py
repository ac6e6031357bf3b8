"""Every file in dags/ imports cleanly and describes itself for the Airflow UI."""

from __future__ import annotations

import pytest
from dag_helpers import DAGS_DIR

DAG_FILES = sorted(path.name for path in DAGS_DIR.glob("*.py"))
EXPECTED_DAGS = {
    "d6_onboarding",
    "d6_nightly_reconciliation",
    "d6_finance_export",
    "d6_school_sync",
}


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED_DAGS
    loaded_files = {dag.fileloc.rsplit("/", 1)[-1] for dag in dagbag.dags.values()}
    assert set(DAG_FILES) <= loaded_files, "a file in dags/ defines no DAG"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_documents_itself(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "d6" in dag.tags
    assert dag.description and len(dag.description) > 20
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title"), f"{dag_id} param {name} has no title for the trigger form"
        assert param.description, f"{dag_id} param {name} has no description"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_every_task_is_retried_after_a_delay_and_bounded_in_time(dag_id, monkeypatch):
    from airflow_provider_d6._compat import DagBag

    # Parsed afresh: the shared dagbag runs each task once. A deployment may shorten the delay.
    monkeypatch.setenv("D6_RETRY_DELAY_SECONDS", "45")
    dag = DagBag(dag_folder=str(DAGS_DIR)).dags[dag_id]

    for task in dag.tasks:
        assert task.retries >= 3, f"{dag_id}.{task.task_id} is not retried"
        assert task.retry_delay.total_seconds() == 45
        if dag_id == "d6_onboarding":
            # The sensor's own wait bounds it; an execution_timeout would cut that wait short.
            assert task.execution_timeout is None
        else:
            assert task.execution_timeout is not None
            assert task.execution_timeout.total_seconds() <= 2 * 3600


def test_the_retry_delay_is_five_minutes_unless_the_environment_says_otherwise(monkeypatch):
    from airflow_provider_d6._compat import DagBag

    monkeypatch.delenv("D6_RETRY_DELAY_SECONDS", raising=False)
    dag = DagBag(dag_folder=str(DAGS_DIR)).dags["d6_finance_export"]

    assert {task.retry_delay.total_seconds() for task in dag.tasks} == {300}


def test_onboarding_trigger_form(dagbag):
    params = dagbag.dags["d6_onboarding"].params
    school = params.get_param("school_id")
    assert school.schema["type"] == "integer" and school.schema["minimum"] == 1
    api_type = params.get_param("api_type_id").schema
    assert api_type["enum"] == [8, 9]
    assert api_type["values_display"] == {"8": "Admin+ API", "9": "Curriculum+ API"}
    assert params["wait_for_authorisation_minutes"] == 60
    assert params["dry_run"] is False


def _cron(timetable) -> tuple[str, str]:
    # The task SDK's timetables (Airflow 3.2+) say expression; 3.1's core ones keep it private.
    expression = getattr(timetable, "expression", None) or timetable._expression
    return expression, str(getattr(timetable, "timezone", None) or timetable._timezone)


def test_schedules(dagbag):
    assert dagbag.dags["d6_onboarding"].schedule is None
    nightly = dagbag.dags["d6_nightly_reconciliation"]
    assert _cron(nightly.timetable) == (
        "0 2 * * *",
        "Africa/Johannesburg",
    )
    assert nightly.catchup is False
    export = dagbag.dags["d6_finance_export"]
    assert _cron(export.timetable) == (
        "0 3 * * *",
        "Africa/Johannesburg",
    )
    assert export.catchup is False
    sync = dagbag.dags["d6_school_sync"]
    # Nightly, or as soon as d6_onboarding announces an activation.
    assert _cron(sync.timetable.timetable) == ("0 4 * * *", "Africa/Johannesburg")
    assert [asset.uri for asset in sync.timetable.asset_condition.objects] == [
        "d6://client-integrations/activated"
    ]
    assert sync.catchup is False


def test_school_sync_trigger_form_offers_the_popia_defaults(dagbag):
    from airflow_provider_d6.operators.privacy import D6_SENSITIVE_FIELDS, D6_SPECIAL_FIELDS

    params = dagbag.dags["d6_school_sync"].params
    assert params["pseudonymise"] == list(D6_SENSITIVE_FIELDS)
    assert params["drop_fields"] == list(D6_SPECIAL_FIELDS)
    assert params["school_ids"] == []
    assert params["storage_root"] == ""
    # The form offers field names d6 records carry, so a typo cannot be submitted.
    enum = params.get_param("pseudonymise").schema["items"]["enum"]
    assert "id_number" in enum and "first_name" in enum and "idnumber" not in enum
