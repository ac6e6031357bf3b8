"""Wait for a d6 client integration to be authorised, activated or deactivated."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_d6._compat import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6NotAuthorisedError
from airflow_provider_d6.hooks.client_integration_state import (
    UNTIL_CHOICES,
    condition_met,
    is_activated,
)
from airflow_provider_d6.triggers.client_integrations import (
    TRANSIENT_ERRORS,
    ClientIntegrationTrigger,
    describe_wait,
)
from airflow_provider_d6.validation import check_choice, check_id, check_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_d6.hooks.d6 import D6Hook

# Airflow's own deferral timeout is a safety net for a triggerer that never answers; it gets this
# much slack beyond the trigger's deadline so that the trigger's timeout event, whose message says
# what was awaited, normally arrives first.
DEFERRAL_TIMEOUT_GRACE = timedelta(minutes=5)
#: The shortest poke interval accepted, in seconds: anything shorter only hammers d6.
MIN_POKE_INTERVAL = 0.01


class ClientIntegrationSensor(BaseSensorOperator):
    """Wait until the pair ``(school_id, api_type_id)`` reaches ``until``; return its record.

    ``until`` is ``"authorised"`` (the school has authorised the integrator, so d6 lists the pair),
    ``"activated"`` (listed and activated by the integrator) or ``"deactivated"`` (listed and not
    activated). Bad credentials or a firewall block fail at once; errors that survive the hook's
    retries (429, 5xx, connection) are logged and the wait goes on.

    :param school_id: the school (templated).
    :param api_type_id: the API type (templated).
    :param until: the state to wait for.
    :param d6_conn_id: the d6 connection.

    ``timeout`` and ``poke_interval`` must be finite numbers of seconds (``timeout`` at most a
    year, ``poke_interval`` at least 0.01 s); anything else fails with ``D6InputError``.
    :param deferrable: wait in the triggerer instead of a worker slot (after one poke).
    """

    template_fields: Sequence[str] = ("school_id", "api_type_id")
    ui_color = "#cfe8f3"

    def __init__(
        self,
        *,
        school_id: int | str,
        api_type_id: int | str,
        until: str = "authorised",
        d6_conn_id: str = "d6_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        # Checked before BaseSensorOperator sees them: nan or inf would make the wait endless
        # (nan compares false with every deadline) or fail there with an untyped OverflowError.
        if "timeout" in kwargs:
            kwargs["timeout"] = check_seconds(kwargs["timeout"], "timeout")
        if "poke_interval" in kwargs:
            kwargs["poke_interval"] = check_seconds(
                kwargs["poke_interval"], "poke_interval", minimum=MIN_POKE_INTERVAL
            )
        super().__init__(**kwargs)
        self.school_id = school_id
        self.api_type_id = api_type_id
        # Not templated, so a bad value can fail the DAG import instead of a run.
        self.until = check_choice(until, "until", UNTIL_CHOICES)
        self.d6_conn_id = d6_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> D6Hook:
        """Return the d6 hook."""
        # Imported here, not at module level: the hook pulls in requests and aiohttp
        # (through HttpHook), which would slow every DAG file that imports this module.
        from airflow_provider_d6.hooks.d6 import D6Hook

        return D6Hook(d6_conn_id=self.d6_conn_id)

    def _pair(self) -> tuple[int, int]:
        """Return the rendered ``(school_id, api_type_id)`` as ints, or raise naming the field."""
        return check_id(self.school_id, "school_id"), check_id(self.api_type_id, "api_type_id")

    def execute(self, context: Context) -> Any:
        """Poke once; then defer to the trigger, or keep poking (poke/reschedule mode)."""
        school_id, api_type_id = self._pair()
        what = describe_wait(school_id, api_type_id, self.until)
        # Checked again: a subclass may set them at run time (from a trigger form, say).
        self.timeout = check_seconds(self.timeout, "timeout")
        self.poke_interval = check_seconds(
            self.poke_interval, "poke_interval", minimum=MIN_POKE_INTERVAL
        )
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:
                raise AirflowSensorTimeout(f"Timed out waiting for {what}: {err}") from err
            except AirflowSkipException as err:
                raise AirflowSkipException(f"Stopped waiting for {what}: {err}") from err

        started = time.time()
        try:
            first = self.poke(context)
        except Exception as err:
            if self.never_fail:  # as BaseSensorOperator does in poke mode
                raise AirflowSkipException(f"Stopped waiting for {what}: {err}") from err
            raise
        if first.is_done:
            return first.xcom_value
        self.log.info("Deferring: waiting for %s, polling every %gs.", what, self.poke_interval)
        self.defer(
            trigger=ClientIntegrationTrigger(
                school_id=school_id,
                api_type_id=api_type_id,
                until=self.until,
                d6_conn_id=self.d6_conn_id,
                poke_interval=self.poke_interval,
                timeout=self.timeout,
                soft_fail=self.soft_fail,
                deadline=started + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_TIMEOUT_GRACE,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the pair once; ``xcom_value`` is its record when the condition holds."""
        school_id, api_type_id = self._pair()
        what = describe_wait(school_id, api_type_id, self.until)
        try:
            record = self.hook.get_client_integration(school_id, api_type_id)
        except D6NotAuthorisedError:
            # Not expected from Get Client Integrations, but it means "not authorised yet".
            record = None
        except TRANSIENT_ERRORS as err:
            # The hook already retried; one failed poll must not fail a wait that may last days.
            self.log.warning("Still waiting for %s; this poke failed: %s", what, printable(err))
            return PokeReturnValue(is_done=False)
        if condition_met(record, self.until):
            self.log.info("Condition met: %s.", what)
            return PokeReturnValue(is_done=True, xcom_value=record)
        if record is None:
            now = "not authorised by the school"
        else:
            now = "activated" if is_activated(record) else "authorised, not activated"
        self.log.info("Waiting for %s (now: %s).", what, now)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Turn the trigger's event into the record, a sensor timeout (or skip), or a failure."""
        payload = event if isinstance(event, dict) else {}
        status = payload.get("status")
        if status == "success":
            self.log.info("Condition met in the triggerer.")
            return payload["record"]
        if status == "timeout":
            message = payload.get("message") or "Timed out"
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        message = payload.get("message")
        error = AirflowException(message or f"Unexpected event from the trigger: {event!r}")
        if self.never_fail:
            raise AirflowSkipException(str(error)) from error
        raise error

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """Resume after deferral, keeping this sensor's own outcome for the trigger's event."""
        if next_method == "execute_complete":
            # BaseSensorOperator turns every error into a generic skip under soft_fail. soft_fail is
            # about the wait timing out, which execute_complete handles with a message that says
            # what was awaited; bad credentials must fail the task here as they do in poke mode.
            return self.execute_complete(context, **(next_kwargs or {}))
        return super().resume_execution(next_method, next_kwargs, context)
