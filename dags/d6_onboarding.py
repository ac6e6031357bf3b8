"""Onboard one school: wait until it authorises us in d6+, then activate and verify the pair."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_d6._compat import AirflowSkipException
from airflow_provider_d6._text import printable
from airflow_provider_d6.assets import D6_SCHOOL_ACTIVATED, activation_extra
from airflow_provider_d6.hooks.client_integration_state import is_activated
from airflow_provider_d6.operators.client_integrations import ClientIntegrationsOperator
from airflow_provider_d6.sensors.client_integrations import ClientIntegrationSensor
from airflow_provider_d6.validation import check_seconds

log = logging.getLogger(__name__)

# What a deployment needs to ride out a worker lost mid-task, a restarted scheduler or api-server
# and d6 unavailable for minutes (`make chaos` shows each): Airflow retries the task, and every
# task here is safe to run again. D6_RETRY_DELAY_SECONDS (seconds) shortens the delay for tests.
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=int(os.environ.get("D6_RETRY_DELAY_SECONDS", "300"))),
    # No execution_timeout: the sensor waits as long as its form says, and the deferral
    # timeout already covers a triggerer that never answers.
}

# The API types d6 documents; the trigger form shows their names in a drop-down.
API_TYPES = {8: "Admin+ API", 9: "Curriculum+ API"}
# The longest wait the form accepts: 30 days.
MAX_WAIT_MINUTES = 30 * 24 * 60

DOC_MD = """
### Onboard a school onto the d6+ Integrate API

A school authorises an integrator inside its own d6+ SAMS; only then can the integrator
*activate* the school × API type pair. This DAG chains the two halves:

1. **lookup** — log what d6 already knows about the school (it may not be listed yet).
2. **wait_for_authorisation** — a deferrable sensor waits, in the triggerer, until the school has
   authorised the API type (at most *wait_for_authorisation_minutes*).
3. **activate** — `ClientIntegrationsOperator(state=True)`; idempotent, so re-runs change nothing.
4. **verify** — read the pair back and fail unless it reads activated (skipped by *dry_run*).
5. **announce_activation** — emits an event of the Asset `d6://client-integrations/activated`
   with extra `{school_id, api_type_id}`, so `d6_school_sync` syncs the school at once instead
   of the next night (skipped by *dry_run*: nothing was activated).
6. **summary** — school name, API type, before → after and timings, logged and returned.

Trigger it from the UI form or with
`airflow dags trigger d6_onboarding -c '{"school_id": 1000, "api_type_id": 8}'`.
"""


class AuthorisationSensor(ClientIntegrationSensor):
    """Wait for authorisation for as long as the run's ``wait_for_authorisation_minutes`` says.

    ``timeout`` is not a template field of sensors, so the value chosen in the trigger form is
    applied when the task starts, before the first poke and before deferring.
    """

    def execute(self, context: Any) -> Any:
        """Take the timeout from the run's params, then poke and defer as usual."""
        minutes = check_seconds(
            context["params"]["wait_for_authorisation_minutes"],
            "wait_for_authorisation_minutes",
            maximum=MAX_WAIT_MINUTES,
        )
        self.timeout = minutes * 60
        return _stamped(super().execute(context))

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Finish after the trigger fired, recording when authorisation was seen."""
        return _stamped(super().execute_complete(context, event))


def _stamped(record: Any) -> Any:
    """Return *record* with the time authorisation was observed, for the summary's timings."""
    if isinstance(record, dict):
        return {**record, "observed_at": time.time()}
    return record


with DAG(
    dag_id="d6_onboarding",
    description="Wait for a school to authorise us in d6+, then activate and verify the pair",
    doc_md=DOC_MD,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="Africa/Johannesburg"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["d6", "onboarding", "client-integrations"],
    params={
        "school_id": Param(
            type="integer",
            minimum=1,
            title="School id",
            description="The d6+ school id (its login id), e.g. 1000.",
        ),
        "api_type_id": Param(
            8,
            type="integer",
            enum=list(API_TYPES),
            values_display={str(key): name for key, name in API_TYPES.items()},
            title="API type",
            description="Which d6+ API the school authorises us for.",
        ),
        "wait_for_authorisation_minutes": Param(
            60,
            type="number",
            minimum=0,
            maximum=MAX_WAIT_MINUTES,
            title="Wait for authorisation (minutes)",
            description="How long to wait for the school to authorise us before failing.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Report what would change without activating anything.",
        ),
    },
) as dag:

    @task
    def lookup(params: dict[str, Any]) -> dict[str, Any]:
        """Log what d6 knows about the school's client integrations before anything changes."""
        from airflow_provider_d6.hooks.d6 import D6Hook  # at run time: keeps DAG parsing fast

        school_id, api_type_id = params["school_id"], params["api_type_id"]
        records = D6Hook().get_client_integrations(school_id=school_id)
        for record in records:
            # d6's text, escaped: a newline in a school name must not forge a log line.
            log.info(
                "d6 lists %s (%s) for %s: activated by integrator: %s",
                printable(record.get("api_type")),
                printable(record.get("api_type_id")),
                printable(record.get("school_name")),
                printable(record.get("activated_by_integrator")),
            )
        if not records:
            log.info("School %s has no client integrations with us yet.", school_id)
        before = next((r for r in records if r["api_type_id"] == api_type_id), None)
        if before is None:
            log.info(
                "School %s has not authorised %s yet; waiting for it.",
                school_id,
                API_TYPES.get(api_type_id, api_type_id),
            )
        return {"before": before, "checked_at": time.time()}

    wait_for_authorisation = AuthorisationSensor(
        task_id="wait_for_authorisation",
        school_id="{{ params.school_id }}",
        api_type_id="{{ params.api_type_id }}",
        until="authorised",
        deferrable=True,
        poke_interval=10,
    )

    activate = ClientIntegrationsOperator(
        task_id="activate",
        school_id="{{ params.school_id }}",
        api_type_id="{{ params.api_type_id }}",
        state=True,
        dry_run="{{ params.dry_run }}",
    )

    @task
    def verify(params: dict[str, Any]) -> dict[str, Any]:
        """Read the pair back from d6 and fail unless it reads activated."""
        from airflow_provider_d6.hooks.d6 import D6Hook  # at run time: keeps DAG parsing fast

        school_id, api_type_id = params["school_id"], params["api_type_id"]
        record = D6Hook().get_client_integration(school_id, api_type_id)
        activated = bool(record) and is_activated(record)
        if not activated and not params["dry_run"]:
            raise RuntimeError(
                f"School {school_id} / API type {api_type_id} does not read activated after "
                f"activation (d6 says: {printable(repr(record))})."
            )
        return {"record": record, "activated": activated, "verified_at": time.time()}

    # After verify, not on activate: the event promises a pair that reads activated, and a dry
    # run (which succeeds without activating) must start no sync. A skipped task emits no event.
    @task(outlets=[D6_SCHOOL_ACTIVATED])
    def announce_activation(
        verified: dict[str, Any],
        params: dict[str, Any] | None = None,
        outlet_events: Any = None,
    ) -> dict[str, int]:
        """Tell the Asset's consumers (d6_school_sync) which pair has just been activated."""
        params = params or {}
        if params["dry_run"] or not verified["activated"]:
            raise AirflowSkipException("Dry run: nothing was activated, so no sync is started.")
        extra = activation_extra(params["school_id"], params["api_type_id"])
        outlet_events[D6_SCHOOL_ACTIVATED].extra = extra
        log.info("Announced the activation of %s to the Asset's consumers.", extra)
        return extra

    @task
    def summary(
        looked_up: dict[str, Any],
        authorised: dict[str, Any],
        activation: dict[str, Any],
        verified: dict[str, Any],
        # Filled in from the task context. Airflow 3.1's @task refuses a context argument before
        # arguments without defaults, so it comes last, with a default.
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log and return a short human-readable account of the onboarding."""
        params = params or {}
        record = verified["record"] or authorised
        before = looked_up["before"]
        changed = bool(activation["changed"])
        if verified["activated"]:
            after = "activated"
        elif params["dry_run"] and changed:
            after = "would be activated (dry run)"
        else:
            after = _describe(record)
        checked_at = looked_up["checked_at"]
        result = {
            "school_id": params["school_id"],
            "school_name": record.get("school_name"),
            "api_type_id": params["api_type_id"],
            "api_type": record.get("api_type") or API_TYPES.get(params["api_type_id"]),
            "before": "not authorised" if before is None else _describe(before),
            "after": after,
            "changed": changed and not params["dry_run"],
            "dry_run": bool(params["dry_run"]),
            # The sensor stamps the moment it saw the authorisation: about 0 when it was already
            # there, else how long the school kept us waiting.
            "waited_for_authorisation_seconds": round(
                max(0.0, authorised.get("observed_at", checked_at) - checked_at), 1
            ),
            "total_seconds": round(verified["verified_at"] - checked_at, 1),
        }
        log.info(
            "%s (school %s), %s: %s -> %s. Waited %.1f s for authorisation; %.1f s in total.",
            printable(result["school_name"]),
            result["school_id"],
            printable(result["api_type"]),
            result["before"],
            result["after"],
            result["waited_for_authorisation_seconds"],
            result["total_seconds"],
        )
        return result

    looked_up = lookup()
    verified = verify()
    looked_up >> wait_for_authorisation >> activate >> verified
    announce_activation(verified)
    summary(
        looked_up=looked_up,
        authorised=wait_for_authorisation.output,
        activation=activate.output,
        verified=verified,
    )


def _describe(record: dict[str, Any]) -> str:
    """Return a client integration's state in words."""
    return "activated" if is_activated(record) else "authorised, not activated"
