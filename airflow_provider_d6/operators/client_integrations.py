"""Fetch and set the state of d6 client integrations (school × API type pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_d6._compat import AirflowException, BaseOperator
from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6Error, D6InputError, D6NotAuthorisedError
from airflow_provider_d6.hooks.client_integration_state import is_activated
from airflow_provider_d6.validation import check_bool, check_id, check_int, parse_structured

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_d6.hooks.d6 import D6Hook

Pair = tuple[int, int]

_DESIRED_KEYS = frozenset({"school_id", "api_type_id", "state"})


class ClientIntegrationsOperator(BaseOperator):
    """Fetch client integrations, or bring them to a desired activation state.

    With neither ``state`` nor ``desired_states`` the matching client integrations are returned
    (all, one school's, or one API type's). With ``state`` (and ``school_id`` and ``api_type_id``) or
    ``desired_states`` the current states are fetched once, only the pairs that differ are written,
    concurrently, and a report is returned::

        {"changed": [...], "unchanged": [...], "not_authorised": [...], "failed": [...],
         "dry_run": False}

    Each entry carries ``school_id``, ``school_name``, ``api_type_id``, ``api_type``, ``before`` and
    ``after`` (activated or not; ``None`` when the school has not authorised the pair) and
    ``desired``; failed entries add ``error``. Entries are sorted by school and API type.

    :param d6_conn_id: the d6 connection.
    :param school_id: the school to fetch, or with ``state`` the school to change.
    :param api_type_id: the API type to fetch, or with ``state`` the API type to change.
    :param state: ``True`` to activate the pair, ``False`` to deactivate it.
    :param desired_states: a list of ``{"school_id", "api_type_id", "state"}`` (or its JSON form).
    :param dry_run: plan and report without sending any write.
    :param fail_on_unauthorised: fail when a pair is not authorised by its school (else report it).
    :param max_concurrency: how many writes may be in flight at once (the hook still throttles).
    """

    template_fields: Sequence[str] = (
        "school_id",
        "api_type_id",
        "state",
        "desired_states",
        "dry_run",
        "fail_on_unauthorised",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"desired_states": "json"}
    ui_color = "#cfe8f3"

    def __init__(
        self,
        *,
        d6_conn_id: str = "d6_default",
        school_id: int | str | None = None,
        api_type_id: int | str | None = None,
        state: bool | str | None = None,
        desired_states: list[dict[str, Any]] | str | None = None,
        dry_run: bool | str = False,
        fail_on_unauthorised: bool | str = True,
        max_concurrency: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.d6_conn_id = d6_conn_id
        self.school_id = school_id
        self.api_type_id = api_type_id
        self.state = state
        self.desired_states = desired_states
        # Shadows BaseOperator.dry_run(), a render-only helper Airflow itself never calls:
        # "dry_run" is this operator's documented, templated argument.
        self.dry_run = dry_run  # type: ignore[assignment, method-assign]
        self.fail_on_unauthorised = fail_on_unauthorised
        self.max_concurrency = max_concurrency

    @cached_property
    def hook(self) -> D6Hook:
        """Return the d6 hook; one instance is shared by the writer threads."""
        # Imported here, not at module level: the hook pulls in requests and aiohttp
        # (through HttpHook), which would slow every DAG file that imports this module.
        from airflow_provider_d6.hooks.d6 import D6Hook

        return D6Hook(d6_conn_id=self.d6_conn_id)

    def execute(self, context: Context) -> list[dict[str, Any]] | dict[str, Any]:
        """Fetch or set client integrations, validating every input before the first request."""
        school_id = check_id(self.school_id, "school_id", optional=True)
        api_type_id = check_id(self.api_type_id, "api_type_id", optional=True)
        state = check_bool(self.state, "state", optional=True)
        dry_run = check_bool(self.dry_run, "dry_run")
        fail_on_unauthorised = check_bool(self.fail_on_unauthorised, "fail_on_unauthorised")
        max_concurrency = check_int(self.max_concurrency, "max_concurrency", minimum=1)

        if state is None and self.desired_states is None:
            return self._fetch(school_id, api_type_id)
        if state is not None and self.desired_states is not None:
            raise D6InputError(
                "cannot be combined with state",
                field="desired_states",
                allowed="None when state (with school_id and api_type_id) is given",
            )
        desired: dict[Pair, bool]
        if state is not None:
            if school_id is None or api_type_id is None:
                raise D6InputError(
                    "required when state is given",
                    field="school_id" if school_id is None else "api_type_id",
                    allowed="an integer >= 1",
                )
            desired = {(school_id, api_type_id): state}
        else:
            for field, value in (("school_id", school_id), ("api_type_id", api_type_id)):
                if value is not None:
                    raise D6InputError(
                        "not used with desired_states; put it in each entry",
                        field=field,
                        allowed="None",
                    )
            desired = parse_desired_states(self.desired_states)

        report = self._reconcile(desired, dry_run=dry_run, max_concurrency=max_concurrency)
        problems = report["failed"] + (report["not_authorised"] if fail_on_unauthorised else [])
        if problems and dry_run:
            self.log.warning(
                "Dry run: a real run would fail on %d pair(s) listed above.", len(problems)
            )
        elif problems:
            if "ti" in context:
                # Keep the report reachable by downstream tasks with trigger_rule="all_done".
                context["ti"].xcom_push(key="report", value=report)
            raise AirflowException(
                _failure_message(report, fail_on_unauthorised=fail_on_unauthorised)
            )
        return report

    def _fetch(self, school_id: int | None, api_type_id: int | None) -> list[dict[str, Any]]:
        """Return the client integrations matching the optional filters."""
        records = list(
            self.hook.iter_client_integrations(school_id=school_id, api_type_id=api_type_id)
        )
        self.log.info(
            "Fetched %d client integration(s) (school_id=%s, api_type_id=%s).",
            len(records),
            school_id if school_id is not None else "any",
            api_type_id if api_type_id is not None else "any",
        )
        return records

    def _reconcile(
        self, desired: dict[Pair, bool], *, dry_run: bool, max_concurrency: int
    ) -> dict[str, Any]:
        """Fetch the current states once, plan, and apply only the differing pairs."""
        report: dict[str, Any] = {
            "changed": [],
            "unchanged": [],
            "not_authorised": [],
            "failed": [],
            "dry_run": dry_run,
        }
        if not desired:
            self.log.info("No desired states given: nothing to fetch or change.")
            return report
        schools = {school for school, _ in desired}
        api_types = {api_type for _, api_type in desired}
        # One walk, filtered as narrowly as the input allows: a walk reads up to a page (50 records)
        # per request, so for many schools it costs far fewer requests than one lookup per pair.
        current: dict[Pair, dict[str, Any]] = {}
        school_names: dict[int, str | None] = {}
        api_type_names: dict[int, str | None] = {}
        for record in self.hook.iter_client_integrations(
            school_id=next(iter(schools)) if len(schools) == 1 else None,
            api_type_id=next(iter(api_types)) if len(api_types) == 1 else None,
        ):
            pair = (int(record["school_id"]), int(record["api_type_id"]))
            school_names.setdefault(pair[0], record.get("school_name"))
            api_type_names.setdefault(pair[1], record.get("api_type"))
            if pair in desired:
                current[pair] = record

        to_apply: list[dict[str, Any]] = []
        for pair in sorted(desired):
            found = current.get(pair)
            before = is_activated(found) if found is not None else None
            entry = {
                "school_id": pair[0],
                "school_name": school_names.get(pair[0]),
                "api_type_id": pair[1],
                "api_type": api_type_names.get(pair[1]),
                "before": before,
                "after": before,
                "desired": desired[pair],
            }
            if found is None:
                # d6 lists only the pairs a school has authorised; no write is sent for the others.
                report["not_authorised"].append(entry)
            elif before == desired[pair]:
                report["unchanged"].append(entry)
            else:
                to_apply.append(entry)

        self.log.info(
            "Plan%s: %d to change, %d already in the desired state, "
            "%d not authorised by the school.\n%s",
            " (dry run, nothing will be written)" if dry_run else "",
            len(to_apply),
            len(report["unchanged"]),
            len(report["not_authorised"]),
            format_table(to_apply + report["not_authorised"], planned=True),
        )
        if dry_run:
            report["changed"] = [{**entry, "after": entry["desired"]} for entry in to_apply]
            return report

        if to_apply:
            with ThreadPoolExecutor(max_workers=min(max_concurrency, len(to_apply))) as pool:
                outcomes = list(pool.map(self._apply, to_apply))
            for bucket, entry in outcomes:
                report[bucket].append(entry)
        for bucket in ("changed", "not_authorised", "failed"):
            report[bucket].sort(key=lambda item: (item["school_id"], item["api_type_id"]))
        self.log.info(
            "Outcome: %d changed, %d unchanged, %d not authorised, %d failed.\n%s",
            len(report["changed"]),
            len(report["unchanged"]),
            len(report["not_authorised"]),
            len(report["failed"]),
            format_table(
                report["changed"] + report["not_authorised"] + report["failed"], planned=False
            ),
        )
        return report

    def _apply(self, entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Write one pair's desired state and return the report bucket and entry it lands in."""
        try:
            result = self.hook.set_client_integration_state(
                entry["school_id"], entry["api_type_id"], entry["desired"]
            )
        except D6NotAuthorisedError:
            # The school withdrew its authorisation between the fetch and the write.
            return "not_authorised", {**entry, "before": None, "after": None}
        except D6Error as err:
            # D6Error text carries method, URL, status and d6's message, never request headers.
            return "failed", {**entry, "error": str(err)}
        # One broken pair must not stop the others from being applied.
        except Exception as err:  # noqa: BLE001
            return "failed", {**entry, "error": f"{type(err).__name__}: {err}"}
        after = entry["desired"]
        # The v1 route answers 204 with no body; use the record only when d6 sent one.
        if isinstance(result, dict) and "activated_by_integrator" in result:
            after = is_activated(result)
        return "changed", {**entry, "after": after}


def parse_desired_states(value: Any) -> dict[Pair, bool]:
    """Validate ``desired_states`` and return it as ``{(school_id, api_type_id): state}``.

    :param value: a list of ``{"school_id", "api_type_id", "state"}`` dicts, or its JSON (or Python
        literal) text as Jinja renders it.
    :raises D6InputError: naming the entry index and field of the first bad entry.
    """
    allowed = 'a list of {"school_id": int, "api_type_id": int, "state": bool}'
    value = parse_structured(value, "desired_states", allowed)
    if not isinstance(value, (list, tuple)):
        raise D6InputError(f"got {type(value).__name__}", field="desired_states", allowed=allowed)
    desired: dict[Pair, bool] = {}
    first_index: dict[Pair, int] = {}
    for index, item in enumerate(value):
        field = f"desired_states[{index}]"
        if not isinstance(item, dict) or set(item) != _DESIRED_KEYS:
            shown = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise D6InputError(
                f"got {shown}",
                field=field,
                allowed="exactly the keys api_type_id, school_id, state",
            )
        pair = (
            check_id(item["school_id"], f"{field}.school_id"),
            check_id(item["api_type_id"], f"{field}.api_type_id"),
        )
        state = check_bool(item["state"], f"{field}.state")
        if pair in desired and desired[pair] != state:
            raise D6InputError(
                f"school {pair[0]} API type {pair[1]} is also at "
                f"desired_states[{first_index[pair]}] "
                "with the opposite state",
                field=field,
                allowed="one state per school and API type",
            )
        desired[pair] = state
        first_index.setdefault(pair, index)
    return desired


def format_table(entries: list[dict[str, Any]], *, planned: bool) -> str:
    """Return *entries* as an aligned text table: school, API type, before → after.

    :param entries: report entries.
    :param planned: show the desired state as the target (a plan) rather than the outcome.
    """
    if not entries:
        return "  (nothing)"
    rows = [("School", "API type", "Before → after", "Note")]
    for entry in entries:
        target = entry["desired"] if planned else entry["after"]
        note = entry.get("error") or (
            "not authorised by the school" if entry["before"] is None else ""
        )
        # Names and errors are d6's text: escaped, so a newline or an ANSI escape in a school
        # name cannot forge or rewrite a line of the table.
        rows.append(
            (
                printable(f"{entry['school_id']} {entry.get('school_name') or ''}".rstrip()),
                printable(f"{entry['api_type_id']} {entry.get('api_type') or ''}".rstrip()),
                f"{_state_word(entry['before'])} → {_state_word(target)}",
                printable(note),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False))
        + ("  " + row[3] if row[3] else "")
        for row in rows
    )


def _state_word(state: bool | None) -> str:
    """Return how a state reads in the log."""
    if state is None:
        return "not listed"
    return "activated" if state else "deactivated"


def _failure_message(report: dict[str, Any], *, fail_on_unauthorised: bool) -> str:
    """Return the task failure message listing every failed and (optionally) unauthorised pair."""
    lines = []
    if fail_on_unauthorised and report["not_authorised"]:
        lines.append(f"{len(report['not_authorised'])} pair(s) not authorised by the school:")
        lines += [f"  {_describe(entry)}" for entry in report["not_authorised"]]
    if report["failed"]:
        lines.append(f"{len(report['failed'])} pair(s) failed:")
        lines += [
            f"  {_describe(entry)}: {printable(entry['error'])}" for entry in report["failed"]
        ]
    lines.append(
        f"({len(report['changed'])} changed, "
        f"{len(report['unchanged'])} already in the desired state)"
    )
    return "Client integrations not all in the desired state.\n" + "\n".join(lines)


def _describe(entry: dict[str, Any]) -> str:
    """Return 'school 1000 (name) API type 8 (name) → activated' for an entry."""
    school = f"school {entry['school_id']}" + (
        f" ({printable(entry['school_name'])})" if entry.get("school_name") else ""
    )
    api_type = f"API type {entry['api_type_id']}" + (
        f" ({printable(entry['api_type'])})" if entry.get("api_type") else ""
    )
    return f"{school} {api_type} → {_state_word(entry['desired'])}"


__all__ = ["ClientIntegrationsOperator", "format_table", "is_activated", "parse_desired_states"]
