"""Bring client integrations to the activation states a desired-states file asks for, nightly."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_d6._text import printable
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from airflow_provider_d6.operators.desired_states import MAX_FILE_BYTES, load_desired_states

log = logging.getLogger(__name__)

# What a deployment needs to ride out a worker lost mid-task, a restarted scheduler or api-server
# and d6 unavailable for minutes (`make chaos` shows each): Airflow retries the task, and every
# task here is safe to run again. D6_RETRY_DELAY_SECONDS (seconds) shortens the delay for tests.
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=int(os.environ.get("D6_RETRY_DELAY_SECONDS", "300"))),
    # Hundreds of pairs take minutes; a hung task is failed, and retried, after this.
    "execution_timeout": timedelta(hours=1),
}

SAMPLE_FILE = "d6_desired_states.yaml"

DOC_MD = f"""
### Reconcile d6+ client integrations nightly

Reads the **desired states** — which school × API type pairs we should be servicing (`state: true`)
and which not (`state: false`) — from a JSON or YAML file, then:

1. **load_desired_states** — parse and validate the file; a bad entry fails the run with its index
   and field (e.g. `desired_states[3].state: ...`).
2. **plan** — `ClientIntegrationsOperator(dry_run=True)`: what would change, without changing it.
3. **apply** — the same operator for real; pairs already in their desired state are left alone,
   so a second run changes nothing.
4. **report_drift** — pairs changed, pairs the schools have not authorised yet, pairs that failed;
   the run fails when any pair failed.

File format (a list, or a mapping with a `desired_states` list):

```yaml
desired_states:
  - {{school_id: 1000, api_type_id: 8, state: true}}
  - {{school_id: 1003, api_type_id: 9, state: false}}
```

The `desired_states_path` param defaults to `{SAMPLE_FILE}` in the DAGs folder. The file must lie
in the DAGs folder, or in the folder the Airflow option `[d6] desired_states_dir` names (relative
paths are read from there), be a regular file of at most {MAX_FILE_BYTES} bytes and use no YAML
anchors or aliases. Runs at 02:00 Africa/Johannesburg and can be triggered by hand.
"""


def _pair(entry: dict[str, Any]) -> dict[str, Any]:
    """Return the identifying part of a report entry and its state after the run."""
    return {
        "school_id": entry["school_id"],
        "api_type_id": entry["api_type_id"],
        "activated": entry["after"],
    }


def _pairs(entries: list[dict[str, Any]]) -> str:
    """Return entries as ``school/API type`` labels for a log line."""
    labels = [
        printable(
            f"{e.get('school_name') or e['school_id']} / {e.get('api_type') or e['api_type_id']}"
        )
        for e in entries
    ]
    return "; ".join(labels) if labels else "none"


with DAG(
    dag_id="d6_nightly_reconciliation",
    description="Nightly: activate or deactivate d6+ client integrations to match a desired list",
    doc_md=DOC_MD,
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="Africa/Johannesburg"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["d6", "client-integrations", "reconciliation"],
    params={
        "desired_states_path": Param(
            SAMPLE_FILE,
            type="string",
            minLength=1,
            title="Desired states file",
            description="JSON or YAML file of {school_id, api_type_id, state} entries, "
            "in the DAGs folder (or [d6] desired_states_dir); relative paths are read from there.",
        ),
    },
) as dag:

    @task
    def load(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Load and validate the desired states named by the run's params."""
        desired = load_desired_states(params["desired_states_path"])
        activate = sum(1 for entry in desired if entry["state"])
        log.info(
            "Desired: %d pairs (%d activated, %d deactivated) from %s",
            len(desired),
            activate,
            len(desired) - activate,
            printable(params["desired_states_path"]),
        )
        return desired

    desired_states = load.override(task_id="load_desired_states")()

    plan = ClientIntegrationsOperator(
        task_id="plan",
        desired_states=desired_states,
        dry_run=True,
        fail_on_unauthorised=False,
    )

    apply = ClientIntegrationsOperator(
        task_id="apply",
        desired_states=desired_states,
        dry_run=False,
        fail_on_unauthorised=False,
    )

    # Runs after a failed apply too (its report says which pairs failed), but not when the file
    # could not be loaded: then there is nothing to report and the load error says why.
    @task(trigger_rule="all_done_min_one_success")
    def report_drift(planned: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """Log the drift found and fixed; fail the run when any pair could not be reconciled."""
        # A failing apply raises after pushing its report under "report", so look there as well.
        applied = ti.xcom_pull(task_ids="apply") or ti.xcom_pull(task_ids="apply", key="report")
        if applied is None:
            raise RuntimeError("apply produced no report; see its log for the error")
        changed = applied["changed"]
        not_authorised = applied["not_authorised"]
        failed = applied["failed"]
        log.info(
            "Planned changes:        %d (%s)", len(planned["changed"]), _pairs(planned["changed"])
        )
        log.info("Changed:                %d (%s)", len(changed), _pairs(changed))
        log.info("Already as desired:     %d", len(applied["unchanged"]))
        log.info(
            "Not authorised by the school yet: %d (%s)", len(not_authorised), _pairs(not_authorised)
        )
        log.info("Failed:                 %d (%s)", len(failed), _pairs(failed))
        report = {
            "changed": [_pair(entry) for entry in changed],
            "unchanged": [_pair(entry) for entry in applied["unchanged"]],
            "not_authorised": [_pair(entry) for entry in not_authorised],
            "failed": [{**_pair(entry), "error": entry.get("error")} for entry in failed],
        }
        if failed:
            raise RuntimeError(
                f"{len(failed)} client integration(s) could not be reconciled: {_pairs(failed)}"
            )
        return report

    plan >> apply
    report_drift(planned=plan.output).set_upstream(apply)
