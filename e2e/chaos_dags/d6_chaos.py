"""DAGs the chaos run kills workers under: one school's export, one debtor note.

They use the provider exactly as the example DAGs do, with the same retry settings
(``D6_RETRY_DELAY_SECONDS`` shortens the delay for the test), so that what the chaos run shows
about a killed worker holds for any DAG built from these operators.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_d6.operators.debtor_notes import D6DebtorNoteOperator
from airflow_provider_d6.operators.storage import D6ToStorageOperator

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=int(os.environ.get("D6_RETRY_DELAY_SECONDS", "300"))),
    "execution_timeout": timedelta(minutes=30),
}
START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG(
    dag_id="d6_chaos_export",
    description="Export one school's learners to a file (the chaos run kills the worker mid-way)",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["d6", "chaos"],
    params={
        "school_id": Param(1000, type="integer", minimum=1),
        "path": Param("/tmp/d6-chaos/learners.jsonl", type="string", minLength=1),
    },
):
    D6ToStorageOperator(
        task_id="export_learners",
        resource="learners",
        school_id="{{ params.school_id }}",
        path="{{ params.path }}",
        # Every learner, not only the current ones: the file is compared with all d6 holds.
        filters={"all_accounts": True},
        format="jsonl",
    )

with DAG(
    dag_id="d6_chaos_note",
    description="Create one debtor note (the chaos run kills the worker after d6 accepted it)",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["d6", "chaos"],
    params={
        "school_id": Param(1000, type="integer", minimum=1),
        "accountable_person_id": Param(type="integer", minimum=1),
        "communication_type_id": Param(type="integer", minimum=1),
        "date": Param(type="string", format="date"),
        "note": Param(type="string", minLength=1, maxLength=500),
    },
):
    D6DebtorNoteOperator(
        task_id="create_note",
        school_id="{{ params.school_id }}",
        accountable_person_id="{{ params.accountable_person_id }}",
        date="{{ params.date }}",
        note_type_id=1,
        communication_type_id="{{ params.communication_type_id }}",
        note="{{ params.note }}",
    )
