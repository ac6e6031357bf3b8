"""Sync every Admin+ / Curriculum+ school's records to storage nightly, and a new school at once."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, literal, task

# AssetOrTimeSchedule and CronDataIntervalTimetable are airflow.sdk's from Airflow 3.2 on; the
# provider finds them on 3.1 too.
from airflow_provider_d6._compat import (
    AirflowNotFoundException,
    AirflowSkipException,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
)
from airflow_provider_d6._text import printable
from airflow_provider_d6.assets import ACTIVATION_API_TYPES, D6_SCHOOL_ACTIVATED, activated_pairs
from airflow_provider_d6.exceptions import D6InputError, D6NotActivatedError, D6ResponseError
from airflow_provider_d6.hooks.client_integration_state import is_activated
from airflow_provider_d6.operators.privacy import (
    D6_SENSITIVE_FIELDS,
    D6_SPECIAL_FIELDS,
    check_field_names,
    known_field_names,
    read_pseudonym_key,
)
from airflow_provider_d6.operators.storage import D6ToStorageOperator, check_storage_root
from airflow_provider_d6.validation import MAX_ID

log = logging.getLogger(__name__)

TIMEZONE = "Africa/Johannesburg"
ADMIN_PLUS, CURRICULUM_PLUS = 8, 9
MODULES = {ADMIN_PLUS: ACTIVATION_API_TYPES[8], CURRICULUM_PLUS: ACTIVATION_API_TYPES[9]}

#: Global lookups, written once per run to ``{root}/lookups/{resource}.jsonl``.
LOOKUPS = ("ethnic_groups", "genders", "languages", "marital_statuses")
#: Snapshots as of the run, one file per school: ``{root}/{school_id}/{resource}.jsonl``.
SNAPSHOTS = {
    "school_info": ADMIN_PLUS,
    "grades": ADMIN_PLUS,
    "adminplus_learners": ADMIN_PLUS,
    "parents": ADMIN_PLUS,
    "staff_members": ADMIN_PLUS,
    "learner_subjects": CURRICULUM_PLUS,
    "learner_subjects_per_term": CURRICULUM_PLUS,
    "learner_subject_marks": CURRICULUM_PLUS,
}
#: The day of the run's data interval, one file per school and day:
#: ``{root}/{school_id}/{resource}/{YYYY-MM-DD}.jsonl``.
DAILY = {"absentees": ADMIN_PLUS, "discipline": ADMIN_PLUS}
MODULE_OF = {**SNAPSHOTS, **DAILY}

#: Personal fields every file of this DAG pseudonymises (POPIA): the provider's documented list.
#: The trigger form can add fields; removing one is a change to this file, not to a run.
PSEUDONYMISED = D6_SENSITIVE_FIELDS
#: Special personal information (race or ethnic origin), dropped from every file.
DROPPED = D6_SPECIAL_FIELDS
#: The Airflow connection whose password is the pseudonym key. Fixed here, not a param: whoever
#: may trigger the DAG must not choose a key they know (that would let them reverse pseudonyms
#: of guessable values such as dates of birth).
PSEUDONYM_KEY_CONN_ID = "d6_pseudonym_key"
MAX_SCHOOL_IDS = 1000
# Curriculum+ marks and subjects per term fan out over the school's learners.
FAN_OUT = {"max_workers": 4, "on_error": "raise"}
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

DOC_MD = """
### Sync every school's Admin+ and Curriculum+ data to storage

For every school that has activated the **Admin+ API** (type 8) and/or the **Curriculum+ API**
(type 9), as Get Client Integrations lists them:

1. **plan_sync** — checks the params (before any d6 request), lists the client integrations and
   plans one export per school and resource; a module the school has not activated is planned
   as a skip with the reason.
2. **export_lookups** — ethnic groups, genders, languages, marital statuses:
   `{storage_root}/lookups/{resource}.jsonl`.
3. **export_school_info**, **export_grades**, **export_adminplus_learners**, **export_parents**,
   **export_staff_members** (Admin+), **export_learner_subjects**,
   **export_learner_subjects_per_term**, **export_learner_subject_marks** (Curriculum+) — snapshots
   as of the run: `{storage_root}/{school_id}/{resource}.jsonl`, replaced atomically (left
   untouched when unchanged).
4. **export_absentees**, **export_discipline** — the day of the run's data interval (one day
   per run):
   `{storage_root}/{school_id}/{resource}/{YYYY-MM-DD}.jsonl`. A day's file holds that day only,
   so a backfill writes each day exactly once and a re-run replaces the day's file.
5. **summary** — files written, modules skipped (with the reason), fails the run if an export
   failed.

A mapped export whose module is not activated for its school is **skipped** (with the reason in
its log and the summary), never failed.

**Schedule**: nightly at 04:00 Africa/Johannesburg for the day that just closed, **or** as soon as
`d6_onboarding` activates a school (the Asset `d6://client-integrations/activated`): such a run
syncs only the schools the events name, with the day that just closed. An Asset is Airflow's own
way to say "data changed, run the consumers": the onboarding does not need to know which DAGs
consume it, the trigger survives a scheduler restart (events are queued in the metadata
database), and the run's `triggering_asset_events` say which school to sync.

**Personal data** (POPIA): every file has `D6_SENSITIVE_FIELDS` (ID and passport numbers,
contact details, addresses, income, date of birth) replaced by keyed pseudonyms (HMAC-SHA256,
stable across runs, so joins still work) and `D6_SPECIAL_FIELDS` (ethnic group) dropped. The key
is the password of the Airflow connection `d6_pseudonym_key`. The trigger form can add fields.

**Backfill**: `airflow backfill create --dag-id d6_school_sync --from-date 2026-01-05
--to-date 2026-01-09` runs one day per run.
"""


def _storage_root(value: Any) -> str:
    """Return the storage root chosen in the params, or ``$AIRFLOW_HOME/data/d6_school_sync``.

    The param is attacker-controlled, so it is checked by :func:`check_storage_root`.
    """
    if value:
        return check_storage_root(value, "storage_root")
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, "data", "d6_school_sync")


def _check_day(value: Any, field: str) -> dt.date:
    try:
        if not isinstance(value, str) or not _DAY.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise D6InputError(
            "is not a date", field=field, allowed="YYYY-MM-DD, e.g. 2026-01-31"
        ) from None


def _sync_day(params: dict[str, Any], context: dict[str, Any]) -> str:
    """Return the day whose absentees and discipline this run syncs (YYYY-MM-DD).

    The ``sync_date`` param when set; else the local day the run's data interval covers (the
    nightly schedule's and every backfill run's interval is one day); else (an Asset-triggered
    or manual run without a data interval) the day that just closed. A run syncs one day, so
    that each day's file is written by exactly one run; a range is a backfill.
    """
    if params.get("sync_date"):
        return _check_day(params["sync_date"], "sync_date").isoformat()
    dag_run = context.get("dag_run")
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    run_type = getattr(dag_run, "run_type", None)
    # An enum (DagRunType) or its value, depending on where the context comes from.
    asset_triggered = str(getattr(run_type, "value", run_type)) == "asset_triggered"
    if asset_triggered or start is None or end is None:
        return pendulum.now(TIMEZONE).subtract(days=1).to_date_string()
    first = pendulum.instance(start).in_timezone(TIMEZONE).date()
    last = pendulum.instance(end).in_timezone(TIMEZONE).date()  # exclusive
    if (last - first).days > 1:
        raise D6InputError(
            f"the data interval spans {(last - first).days} days",
            field="data_interval",
            allowed="one day per run: backfill a range (airflow backfill create), one run a day",
        )
    return first.isoformat()


def _school_ids(value: Any) -> set[int] | None:
    """Return the schools the ``school_ids`` param limits the run to (None: every school)."""
    if value in (None, []):
        return None
    if not isinstance(value, list) or len(value) > MAX_SCHOOL_IDS:
        raise D6InputError(
            "is not a list of school ids",
            field="school_ids",
            allowed=f"a list of at most {MAX_SCHOOL_IDS} ids from 1 to {MAX_ID}",
        )
    for item in value:
        if type(item) is not int or not 1 <= item <= MAX_ID:
            raise D6InputError(
                f"{printable(repr(item), limit=40)} is not a school id",
                field="school_ids",
                allowed=f"integers from 1 to {MAX_ID}",
            )
    return set(value)


def _privacy(params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return the fields to pseudonymise and to drop: this file's lists plus the form's."""
    extra_pseudonymised, _ = check_field_names(params.get("pseudonymise") or (), "pseudonymise")
    extra_dropped, _ = check_field_names(params.get("drop_fields") or (), "drop_fields")
    dropped = list(dict.fromkeys((*DROPPED, *extra_dropped)))
    pseudonymised = [
        name
        for name in dict.fromkeys((*PSEUDONYMISED, *extra_pseudonymised))
        if name not in dropped
    ]
    return pseudonymised, dropped


def _check_pseudonym_key() -> None:
    """Fail unless the pseudonym key connection exists with a long enough password."""
    try:
        read_pseudonym_key(PSEUDONYM_KEY_CONN_ID)
    except AirflowNotFoundException:
        raise D6InputError(
            f"there is no connection {PSEUDONYM_KEY_CONN_ID!r}",
            field="pseudonym_key_conn_id",
            allowed=f"an Airflow connection {PSEUDONYM_KEY_CONN_ID!r} whose password is a long "
            "random secret (airflow connections add ... --conn-password ...)",
        ) from None


def _school_id(record: dict[str, Any], index: int) -> int:
    """Return a client integration's school id, refusing anything but a plain positive int.

    The id comes from d6's answer and ends up in operator arguments and file paths.
    """
    value = record.get("school_id")
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise D6ResponseError(
            f"client_integrations[{index}].school_id is not a school id "
            f"(expected an integer from 1 to {MAX_ID}, got {type(value).__name__})"
        )
    return value


def _triggering_pairs(context: dict[str, Any]) -> dict[int, set[int]] | None:
    """Return the pairs named by the activation events that triggered this run, or None."""
    accessor = context.get("triggering_asset_events")
    if not accessor:
        return None
    try:
        events = accessor[D6_SCHOOL_ACTIVATED]
    except KeyError:
        return None
    return activated_pairs(events)


def _module_state(records: Iterable[dict[str, Any]], api_type_id: int) -> str | None:
    """Return why *api_type_id* cannot be synced from the school's records, or None if it can."""
    record = next((r for r in records if r.get("api_type_id") == api_type_id), None)
    if record is None:
        return f"{MODULES[api_type_id]} is not authorised by the school"
    if not is_activated(record):
        return f"{MODULES[api_type_id]} is authorised but not activated"
    return None


class SchoolExport(D6ToStorageOperator):
    """``D6ToStorageOperator`` with this DAG's privacy lists that skips a module not activated.

    :param skip_reason: when set (the plan found the module not activated), the task is skipped
        with this reason and nothing is requested.
    :param more_pseudonymised: fields pseudonymised on top of :data:`PSEUDONYMISED`.
    :param more_dropped: fields dropped on top of :data:`DROPPED`.
    """

    def __init__(
        self,
        *,
        skip_reason: str | None = None,
        more_pseudonymised: Iterable[str] = (),
        more_dropped: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        # The floor comes from this file, so an XCom cannot lower it, only add to it.
        dropped = list(dict.fromkeys((*DROPPED, *more_dropped)))
        pseudonymised = [
            name
            for name in dict.fromkeys((*PSEUDONYMISED, *more_pseudonymised))
            if name not in dropped
        ]
        super().__init__(
            drop_fields=dropped,
            pseudonymise=pseudonymised,
            pseudonym_key_conn_id=PSEUDONYM_KEY_CONN_ID,
            **kwargs,
        )
        self.skip_reason = skip_reason

    def execute(self, context: Any) -> dict[str, Any]:
        """Export, or skip with the reason when the school has not activated the module."""
        if self.skip_reason:
            self._skip(context, self.skip_reason)
        try:
            return super().execute(context)
        except D6NotActivatedError as error:
            # Deactivated since the plan was made: d6 says so, and that is a skip, not a failure.
            module = error.module or MODULES.get(error.api_type_id or 0, "the module")
            self._skip(context, f"{module} is not activated, d6 answered: {error}")
            raise  # unreachable: _skip raises

    def _skip(self, context: Any, reason: str) -> None:
        text = printable(reason, limit=300)
        ti = context.get("ti") if context else None
        if ti is not None:
            ti.xcom_push(key="skip_reason", value=text)
        raise AirflowSkipException(f"School {self.school_id}: {text}")


def _export_kwargs(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return the function that turns one planned export into *resource*'s operator arguments."""

    def build(item: dict[str, Any]) -> dict[str, Any]:
        school_id = int(item["school_id"])
        daily = resource in DAILY
        if daily:
            path = f"{item['root']}/{school_id}/{resource}/{item['day']}.jsonl"
        else:
            path = f"{item['root']}/{school_id}/{resource}.jsonl"
        filters: dict[str, Any] = {}
        if daily:
            filters = {"from_date": item["day"], "to_date": item["day"]}
        elif resource in ("learner_subjects_per_term", "learner_subject_marks"):
            filters = dict(FAN_OUT)
        # Airflow renders expand_kwargs values of template fields as Jinja; these come from a
        # form param and a d6 answer, so they are literals (or ints) and never rendered.
        module = MODULE_OF[resource]
        return {
            "school_id": school_id,
            "path": literal(path),
            "filters": literal(filters),
            "skip_reason": item["skipped"].get(str(module)),
            "more_pseudonymised": list(item["pseudonymise"]),
            "more_dropped": list(item["drop_fields"]),
        }

    return build


def _lookup_kwargs(item: dict[str, Any]) -> dict[str, Any]:
    """Return one global lookup's export arguments (see :func:`_export_kwargs`)."""
    resource = item["resource"]
    if resource not in LOOKUPS:  # from an XCom: only the lookups this file names
        raise D6InputError("not a lookup", field="resource", allowed=", ".join(LOOKUPS))
    return {
        "resource": resource,
        "path": literal(f"{item['root']}/lookups/{resource}.jsonl"),
        "more_pseudonymised": list(item["pseudonymise"]),
        "more_dropped": list(item["drop_fields"]),
    }


# What a deployment needs to ride out a worker lost mid-task, a restarted scheduler or api-server
# and d6 unavailable for minutes (`make chaos` shows each): Airflow retries the task, and every
# task here is safe to run again. D6_RETRY_DELAY_SECONDS (seconds) shortens the delay for tests.
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": dt.timedelta(seconds=int(os.environ.get("D6_RETRY_DELAY_SECONDS", "300"))),
    # A large school takes minutes; a hung task is failed, and retried, after this.
    "execution_timeout": dt.timedelta(hours=1),
}


with DAG(
    dag_id="d6_school_sync",
    description="Nightly and on activation: sync each school's Admin+ and Curriculum+ records",
    doc_md=DOC_MD,
    # Nightly for the day that just closed (data intervals, so backfills run one day each), or
    # as soon as d6_onboarding emits an activation event.
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("0 4 * * *", timezone=TIMEZONE),
        assets=[D6_SCHOOL_ACTIVATED],
    ),
    start_date=pendulum.datetime(2025, 1, 1, tz=TIMEZONE),
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["d6", "adminplus", "curriculumplus", "sync"],
    params={
        "storage_root": Param(
            "",
            type="string",
            maxLength=1000,
            title="Storage root",
            description="Where the files go (a local path or an object storage URL); "
            "empty means $AIRFLOW_HOME/data/d6_school_sync on the worker.",
        ),
        "sync_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Sync date",
            description="Day of absentees and discipline to sync (YYYY-MM-DD); "
            "empty means the run's data interval (the day that just closed).",
        ),
        "school_ids": Param(
            [],
            type="array",
            items={"type": "integer", "minimum": 1, "maximum": MAX_ID},
            maxItems=MAX_SCHOOL_IDS,
            title="Schools",
            description="Sync only these school ids; empty means every school with Admin+ or "
            "Curriculum+ activated.",
        ),
        "pseudonymise": Param(
            list(PSEUDONYMISED),
            type="array",
            items={"type": "string", "enum": sorted(known_field_names())},
            maxItems=200,
            title="Pseudonymised fields",
            description="Fields replaced by a keyed pseudonym (POPIA). The default list "
            "(D6_SENSITIVE_FIELDS) always applies; fields added here are pseudonymised too.",
        ),
        "drop_fields": Param(
            list(DROPPED),
            type="array",
            items={"type": "string", "enum": sorted(known_field_names())},
            maxItems=200,
            title="Dropped fields",
            description="Fields left out of every file. The default (D6_SPECIAL_FIELDS, ethnic "
            "group) always applies; fields added here are dropped too.",
        ),
    },
) as dag:

    @task
    def plan_sync(params: dict[str, Any], **context: Any) -> list[dict[str, Any]]:
        """Check the params, list the client integrations and plan each school's exports."""
        from airflow_provider_d6.hooks.d6 import D6Hook  # at run time: keeps DAG parsing fast

        # Everything from the form is checked before the first d6 request.
        root = _storage_root(params.get("storage_root"))
        day = _sync_day(params, context)
        wanted = _school_ids(params.get("school_ids"))
        pseudonymise, drop_fields = _privacy(params)
        _check_pseudonym_key()  # fail now, not in every export
        triggered = _triggering_pairs(context)
        if triggered is not None:
            log.info(
                "Triggered by the activation of: %s",
                ", ".join(
                    f"school {school} ({', '.join(MODULES[t] for t in sorted(types))})"
                    for school, types in triggered.items()
                )
                or "no valid school",
            )
            wanted = set(triggered) if wanted is None else wanted & set(triggered)

        by_school: dict[int, list[dict[str, Any]]] = {}
        for index, record in enumerate(D6Hook().get_client_integrations()):
            if record.get("api_type_id") in MODULES:
                by_school.setdefault(_school_id(record, index), []).append(record)
        schools: list[dict[str, Any]] = []
        for school_id, records in sorted(by_school.items()):
            if wanted is not None and school_id not in wanted:
                continue
            name = printable(records[0].get("school_name") or "", limit=200)
            skipped = {
                str(api_type): reason
                for api_type in MODULES
                if (reason := _module_state(records, api_type))
            }
            if len(skipped) == len(MODULES):
                log.info(
                    "School %s %s: nothing to sync (%s)",
                    school_id,
                    name,
                    "; ".join(skipped.values()),
                )
                continue
            schools.append(
                {
                    "school_id": school_id,
                    "root": root,
                    "day": day,
                    "skipped": skipped,
                    "pseudonymise": pseudonymise,
                    "drop_fields": drop_fields,
                }
            )
            log.info(
                "School %s %s: syncing%s",
                school_id,
                name,
                "".join(f"; skipping {MODULES[int(k)]}: {v}" for k, v in skipped.items()),
            )
        for school_id in sorted((wanted or set()) - {s["school_id"] for s in schools}):
            if school_id not in by_school:
                log.info("School %s has not authorised Admin+ or Curriculum+", school_id)
        log.info(
            "Syncing %d school(s), day %s, to %s; pseudonymised: %s; dropped: %s",
            len(schools),
            day,
            root,
            ", ".join(pseudonymise),
            ", ".join(drop_fields),
        )
        return schools

    @task
    def plan_lookups(schools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Plan the global lookups once per run, when some school has Admin+ to sync."""
        with_admin = [s for s in schools if str(ADMIN_PLUS) not in s["skipped"]]
        if not with_admin:
            return []
        first = with_admin[0]
        return [
            {
                "resource": resource,
                "root": first["root"],
                "pseudonymise": first["pseudonymise"],
                "drop_fields": first["drop_fields"],
            }
            for resource in LOOKUPS
        ]

    schools = plan_sync()
    lookup_plan = plan_lookups(schools)

    # Mapped tasks are built at run time, so outlets are declared here: every file is attached
    # to its resource's alias, and downstream DAGs can be scheduled on it.
    lookups = SchoolExport.partial(
        task_id="export_lookups",
        format="jsonl",
        skip_if_unchanged=True,
        map_index_template="{{ task.resource }}",
        outlets=[AssetAlias(name="d6-school-sync:lookups")],
    ).expand_kwargs(lookup_plan.map(_lookup_kwargs))
    exports = [
        SchoolExport.partial(
            task_id=f"export_{resource}",
            resource=resource,
            format="jsonl",
            # Snapshots unchanged since the last run keep their file (and modification time).
            skip_if_unchanged=resource in SNAPSHOTS,
            map_index_template="school {{ task.school_id }}",
            outlets=[AssetAlias(name=f"d6-school-sync:{resource}")],
        ).expand_kwargs(schools.map(_export_kwargs(resource)))
        for resource in (*SNAPSHOTS, *DAILY)
    ]

    # Runs however the exports ended, so that one failure is reported, not hidden.
    @task(trigger_rule="all_done")
    def summary(
        schools: list[dict[str, Any]], lookups: list[dict[str, Any]], ti: Any = None
    ) -> dict[str, Any]:
        """List the files written and the skips; fail the run if any export did not finish."""
        counts = {
            "export_lookups": len(lookups),
            **{f"export_{r}": len(schools) for r in (*SNAPSHOTS, *DAILY)},
        }
        written: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        failed: list[str] = []
        for task_id, count in counts.items():
            if not count:
                continue
            for index in range(count):
                school = None if task_id == "export_lookups" else schools[index]["school_id"]
                module = MODULE_OF.get(task_id[len("export_") :])
                # A skip the plan decided is known here; ask XCom only about the others.
                reason = schools[index]["skipped"].get(str(module)) if school else None
                result = None
                if not reason:
                    result = ti.xcom_pull(task_ids=task_id, map_indexes=index)
                if not reason and not result:
                    reason = ti.xcom_pull(task_ids=task_id, key="skip_reason", map_indexes=index)
                if result:
                    written.append(result)
                    log.info(
                        "%-34s school %-6s %6d records  %s%s",
                        task_id,
                        school or "-",
                        result["records"],
                        result["path"],
                        " (unchanged)" if result["skipped"] else "",
                    )
                elif reason:
                    skipped.append({"task_id": task_id, "school_id": school, "reason": reason})
                    log.info("%-34s school %-6s skipped: %s", task_id, school, reason)
                else:
                    failed.append(f"{task_id}[{index}]")
        log.info(
            "Wrote %d files, skipped %d exports, %d failed.",
            len(written),
            len(skipped),
            len(failed),
        )
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {sum(counts.values())} exports failed: {', '.join(failed)}"
            )
        first = schools[0] if schools else {}
        return {
            "schools": [s["school_id"] for s in schools],
            "day": first.get("day"),
            "files": sorted(str(result["path"]) for result in written),
            "records": {str(result["path"]): result["records"] for result in written},
            "skipped": skipped,
            "pseudonymised_fields": first.get("pseudonymise", []),
            "dropped_fields": first.get("drop_fields", []),
        }

    summary(schools, lookup_plan).set_upstream([lookups, *exports])
