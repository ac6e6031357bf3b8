"""Export each activated school's learners, age analysis and day's transactions to storage daily."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, literal, task

# CronDataIntervalTimetable is airflow.sdk's from Airflow 3.2 on; the provider finds it on 3.1 too.
from airflow_provider_d6._compat import CronDataIntervalTimetable
from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6InputError, D6ResponseError
from airflow_provider_d6.hooks.client_integration_state import is_activated
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from airflow_provider_d6.operators.storage import D6ToStorageOperator, check_storage_root
from airflow_provider_d6.validation import MAX_ID

log = logging.getLogger(__name__)

# What a deployment needs to ride out a worker lost mid-task, a restarted scheduler or api-server
# and d6 unavailable for minutes (`make chaos` shows each): Airflow retries the task, and every
# task here is safe to run again. D6_RETRY_DELAY_SECONDS (seconds) shortens the delay for tests.
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=int(os.environ.get("D6_RETRY_DELAY_SECONDS", "300"))),
    # A large school takes minutes; a hung task is failed, and retried, after this.
    "execution_timeout": timedelta(hours=1),
}

TIMEZONE = "Africa/Johannesburg"
RESOURCES = ("learners", "age_analysis", "financial_transactions")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

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
(resolved on the worker), or an absolute path or `file://`, `s3://`, `gs://`, `gcs://`, `abfs://`,
`abfss://`, `az://` URL with plain segments (no `..`, no template syntax). A deployment confines
it with the Airflow option `[d6] export_storage_roots` (comma-separated roots).
"""


def _storage_root(value: Any) -> str:
    """Return the storage root chosen in the params, or ``$AIRFLOW_HOME/data`` on this worker.

    The param is attacker-controlled (anyone who may trigger the DAG sets it), so it is checked
    by :func:`check_storage_root`: an allowed scheme, plain segments, within the deployment's
    ``[d6] export_storage_roots`` when set.
    """
    if value:
        return check_storage_root(value, "storage_root")
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "data")


def _export_day(params: dict[str, Any], context: dict[str, Any]) -> str:
    """Return the day to export: the param, else the run's ``ds``, else today in Johannesburg."""
    value = params.get("export_date")
    if value:
        # Exactly YYYY-MM-DD: the day ends up in file paths and d6 filters.
        try:
            if not isinstance(value, str) or not _DAY.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise D6InputError(
                "is not a date", field="export_date", allowed="YYYY-MM-DD, e.g. 2026-01-31"
            ) from None
    # Airflow 3 manual runs may have no logical date, and then no ds.
    return context.get("ds") or pendulum.now(TIMEZONE).to_date_string()


def _school_id(record: dict[str, Any], index: int) -> int:
    """Return a client integration's school id, refusing anything but a plain positive int.

    The id comes from d6's answer and ends up in templated operator arguments and file paths,
    so a string (which Airflow would render as a template) or a huge number is refused.
    """
    value = record.get("school_id")
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise D6ResponseError(
            f"client_integrations[{index}].school_id is not a school id "
            f"(expected an integer from 1 to {MAX_ID}, got {type(value).__name__})"
        )
    return value


def _export_kwargs(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return the function that turns one planned school into *resource*'s export arguments."""

    def build(school: dict[str, Any]) -> dict[str, Any]:
        day = school["day"]
        # Only the financial transactions are per day; the other two are snapshots as of now.
        filters = (
            {"start_date": day, "end_date": day} if resource == "financial_transactions" else {}
        )
        # Airflow renders expand_kwargs values as Jinja templates; these are built from a form
        # param and a d6 answer, so they are passed as literals and never rendered.
        return {
            "school_id": int(school["school_id"]),
            "path": literal(f"{school['root']}/{day}/{school['school_id']}/{resource}.jsonl"),
            "filters": literal(filters),
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
    default_args=DEFAULT_ARGS,
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
        day = _export_day(params, context)
        root = _storage_root(params["storage_root"])
        schools: dict[int, str] = {}
        for index, record in enumerate(integrations):
            if is_activated(record):
                schools.setdefault(_school_id(record, index), record.get("school_name") or "")
        log.info("Exporting %s for %d activated school(s) to %s/%s/", day, len(schools), root, day)
        for school_id, name in sorted(schools.items()):
            log.info("  %s %s", school_id, printable(name))
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
            # Explicit map indexes: without them Airflow returns a single school's result as the
            # bare dict instead of a list of one. Failed map indexes pushed nothing (None).
            results = ti.xcom_pull(
                task_ids=f"export_{resource}", map_indexes=list(range(len(schools)))
            )
            for result in results or []:
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
