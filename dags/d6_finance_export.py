"""Export each activated school's learners, age analysis and day's transactions to storage daily."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, CronDataIntervalTimetable, Param, task

from airflow_provider_d6.hooks.client_integration_state import is_activated
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from airflow_provider_d6.operators.storage import D6ToStorageOperator

log = logging.getLogger(__name__)

TIMEZONE = "Africa/Johannesburg"
RESOURCES = ("learners", "age_analysis", "financial_transactions")

DOC_MD = """
### Export Finance+ data for every activated school

1. **list_client_integrations** — `ClientIntegrationsOperator` in fetch mode.
2. **plan_exports** — keep the schools with at least one *activated* integration (once each, however
   many API types), with the export day and storage root.
3. **export_learners**, **export_age_analysis**, **export_financial_transactions** —
   `D6ToStorageOperator`, mapped once per school (labelled with the school id), writing
   `{storage_root}/{day}/{school_id}/{resource}.jsonl`. Mapped tasks are independent: one school's
   failure does not stop the others.
4. **summary** — runs whatever happened upstream, lists the files written and fails the run if
   any school's export failed.

Runs daily at 03:00 Africa/Johannesburg for the day that just closed (the run's `ds`); the
financial transactions are filtered to that day (`start_date` = `end_date` = day). Set
`export_date` to export another day by hand. `storage_root` defaults to `$AIRFLOW_HOME/data`
(resolved on the worker) and may be any path `ObjectStoragePath` understands.
"""


def _storage_root(value: str | None) -> str:
    """Return the storage root chosen in the params, or ``$AIRFLOW_HOME/data`` on this worker."""
    if value:
        return value.rstrip("/")
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "data")


def _export_day(params: dict[str, Any], context: dict[str, Any]) -> str:
    """Return the day to export: the param, else the run's ``ds``, else today in Johannesburg."""
    if params.get("export_date"):
        return pendulum.parse(params["export_date"]).to_date_string()
    # Airflow 3 manual runs may have no logical date, and then no ds.
    return context.get("ds") or pendulum.now(TIMEZONE).to_date_string()


def _export_kwargs(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return the function that turns one planned school into *resource*'s export arguments."""

    def build(school: dict[str, Any]) -> dict[str, Any]:
        day = school["day"]
        # Only the financial transactions are per day; the other two are snapshots as of now.
        filters = (
            {"start_date": day, "end_date": day} if resource == "financial_transactions" else {}
        )
        return {
            "school_id": school["school_id"],
            "path": f"{school['root']}/{day}/{school['school_id']}/{resource}.jsonl",
            "filters": filters,
        }

    return build


with DAG(
    dag_id="d6_finance_export",
    description="Daily: export every activated school's learners, age analysis and transactions",
    doc_md=DOC_MD,
    # Data intervals (not trigger times) so that the 03:00 run's ds is the day that just closed.
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2025, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["d6", "finance", "export"],
    params={
        "storage_root": Param(
            "",
            type="string",
            title="Storage root",
            description="Where the files go (a local path or an object storage URL); "
            "empty means $AIRFLOW_HOME/data on the worker.",
        ),
        "export_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Export date",
            description="Day of financial transactions to export (YYYY-MM-DD); "
            "empty means the run's date.",
        ),
    },
) as dag:
    list_client_integrations = ClientIntegrationsOperator(task_id="list_client_integrations")

    @task
    def plan_exports(
        integrations: list[dict[str, Any]], params: dict[str, Any], **context: Any
    ) -> list[dict[str, Any]]:
        """Return each school with an activated integration once, with the export day and root."""
        schools: dict[int, str] = {}
        for record in integrations:
            if is_activated(record):
                schools.setdefault(record["school_id"], record.get("school_name") or "")
        day = _export_day(params, context)
        root = _storage_root(params["storage_root"])
        log.info("Exporting %s for %d activated school(s) to %s/%s/", day, len(schools), root, day)
        for school_id, name in sorted(schools.items()):
            log.info("  %s %s", school_id, name)
        return [
            {"school_id": school_id, "school_name": name, "day": day, "root": root}
            for school_id, name in sorted(schools.items())
        ]

    schools = plan_exports(list_client_integrations.output)

    exports = [
        D6ToStorageOperator.partial(
            task_id=f"export_{resource}",
            resource=resource,
            format="jsonl",
            map_index_template="school {{ task.school_id }}",
            # Mapped tasks are built at run time, so the outlet is declared here: every school's
            # file is attached to this alias, and downstream DAGs can be scheduled on it.
            outlets=[AssetAlias(name=f"d6-finance-export:{resource}")],
        ).expand_kwargs(schools.map(_export_kwargs(resource)))
        for resource in RESOURCES
    ]

    # Runs however the exports ended, so that one school's failure is reported, not hidden;
    # not when there was no plan to export.
    @task(trigger_rule="all_done_min_one_success")
    def summary(schools: list[dict[str, Any]], ti: Any = None) -> dict[str, Any]:
        """List the files written; fail the run if any school's export did not finish."""
        written: list[dict[str, Any]] = []
        for resource in RESOURCES:
            # Failed map indexes pushed nothing, so they are simply absent here.
            for result in ti.xcom_pull(task_ids=f"export_{resource}") or []:
                if result:
                    written.append(result)
                    log.info(
                        "%-22s school %-6s %6d records  %s",
                        resource,
                        result["school_id"],
                        result["records"],
                        result["path"],
                    )
        expected = len(schools) * len(RESOURCES)
        log.info("Wrote %d of %d files.", len(written), expected)
        if len(written) < expected:
            raise RuntimeError(
                f"{expected - len(written)} of {expected} exports failed; "
                "see the failed map indexes of the export_* tasks"
            )
        return {"schools": len(schools), "files": sorted(result["path"] for result in written)}

    summary(schools).set_upstream(exports)
