"""Wait, asynchronously, for a d6 client integration to reach a state."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import (
    D6ConnectionError,
    D6Error,
    D6InputError,
    D6NotAuthorisedError,
    D6RateLimitError,
    D6ResponseError,
    D6ServerError,
)
from airflow_provider_d6.hooks.client_integration_state import (
    UNTIL_CHOICES,
    condition_met,
    is_activated,
)
from airflow_provider_d6.triggers._shared_poll import ClientIntegrationPoller, Waiter, poller_for
from airflow_provider_d6.validation import check_bool, check_id, check_seconds

# Errors that may clear up on their own: the hook already retried them, and one that survives its
# retries during a wait only costs a poll. Everything else (bad credentials, a bad connection, a
# 403, an input d6 rejects, a route d6 does not serve) fails at once: waiting cannot fix it. A 403
# from d6's firewall is included on purpose: it blocks our egress address, which someone has to
# change, so waiting out the timeout would only delay the error.
TRANSIENT_ERRORS: tuple[type[D6Error], ...] = (
    D6RateLimitError,
    D6ServerError,
    D6ConnectionError,
    D6ResponseError,
)


def describe_wait(school_id: Any, api_type_id: Any, until: str) -> str:
    """Return 'school 1000 API type 8 to be activated' for messages.

    :param school_id: the school.
    :param api_type_id: the API type.
    :param until: the awaited state.
    """
    return f"school {school_id} API type {api_type_id} to be {until}"


class ClientIntegrationTrigger(BaseTrigger):
    """Poll d6 until the pair ``(school_id, api_type_id)`` reaches ``until``, or a deadline passes.

    Yields exactly one event, a plain dict: ``{"status": "success", "record": {...}}``,
    ``{"status": "timeout", "message": ...}`` or ``{"status": "error", "message": ...}``.

    :param school_id: the school.
    :param api_type_id: the API type.
    :param until: ``"authorised"``, ``"activated"`` or ``"deactivated"``.
    :param d6_conn_id: the d6 connection.
    :param poke_interval: seconds between polls.
    :param timeout: seconds to wait in all, counted from when the trigger was first built.
    :param soft_fail: whether the waiting task skips rather than fails on timeout (carried in the
        timeout event).
    :param deadline: the absolute deadline (epoch seconds); computed from ``timeout`` when omitted
        and kept in the serialized form so that a restarted triggerer does not start the clock over.
    """

    def __init__(
        self,
        school_id: int,
        api_type_id: int,
        until: str,
        d6_conn_id: str = "d6_default",
        poke_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600.0,
        soft_fail: bool = False,
        deadline: float | None = None,
    ) -> None:
        # Airflow's BaseTrigger.__init__ has no annotations, and untyped_calls_exclude does not
        # reach super() calls.
        super().__init__()  # type: ignore[no-untyped-call]
        # The triggerer rebuilds this from its serialized kwargs: each is checked for its type,
        # as int() would take True, 1.9 or "١٢٣" and float() nan or inf.
        if until not in UNTIL_CHOICES:
            raise D6InputError(
                f"until must be one of {', '.join(UNTIL_CHOICES)}, not {until!r}",
                field="until",
                allowed=", ".join(UNTIL_CHOICES),
            )
        self.school_id = check_id(school_id, "school_id")
        self.api_type_id = check_id(api_type_id, "api_type_id")
        self.until = until
        self.d6_conn_id = d6_conn_id
        self.poke_interval = check_seconds(poke_interval, "poke_interval", minimum=0.01)
        self.timeout = check_seconds(timeout, "timeout")
        self.soft_fail = check_bool(soft_fail, "soft_fail")
        if deadline is None:
            self.deadline = time.time() + self.timeout
        elif (
            isinstance(deadline, (int, float))
            and not isinstance(deadline, bool)
            and math.isfinite(deadline)
        ):
            self.deadline = float(deadline)
        else:
            raise D6InputError(
                f"{deadline!r} is not a time", field="deadline", allowed="epoch seconds"
            )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the JSON-safe arguments that rebuild this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "school_id": self.school_id,
                "api_type_id": self.api_type_id,
                "until": self.until,
                "d6_conn_id": self.d6_conn_id,
                "poke_interval": self.poke_interval,
                "timeout": self.timeout,
                "soft_fail": self.soft_fail,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the condition holds, the deadline passes or a non-transient error occurs.

        Every trigger of the same connection in this event loop shares one poller (one session,
        one view of d6's client integrations per interval); this trigger's share is released
        however it ends, cancellation included.
        """
        poller = poller_for(self.d6_conn_id)
        waiter = poller.join((self.school_id, self.api_type_id), self.poke_interval)
        try:
            payload = await self._wait(poller, waiter)
        finally:
            # Released before the event is yielded: the triggerer may drop the generator right
            # after the first event, and a suspended cleanup would then never run.
            await poller.leave(waiter)
        yield TriggerEvent(payload)

    async def _wait(self, poller: ClientIntegrationPoller, waiter: Waiter) -> dict[str, Any]:
        """Return the event payload: success, timeout or error."""
        what = describe_wait(self.school_id, self.api_type_id, self.until)
        pair = (self.school_id, self.api_type_id)
        polls = 0
        while True:
            # The first view is always awaited (as the first poll always was), later ones only
            # until the deadline: a trigger never outlives its deadline by more than one poll.
            remaining = None if polls == 0 else self.deadline - time.time()
            try:
                view = await poller.next_view(waiter, remaining)
            except D6NotAuthorisedError:
                # Not expected from Get Client Integrations (it takes no school header), but it
                # means exactly "not authorised yet", which is something to wait out.
                record = None
            except TRANSIENT_ERRORS as err:
                self.log.warning("Still waiting for %s; this poll failed: %s", what, printable(err))
                record = None
            except D6Error as err:
                return {"status": "error", "message": f"Waiting for {what}: {err}"}
            else:
                if view is None:
                    return self._timed_out(what, polls)
                record = view.record(pair)
            polls += 1
            if condition_met(record, self.until):
                self.log.info("Condition met after %d poll(s): %s.", polls, what)
                return {"status": "success", "record": record}
            if self.deadline - time.time() <= 0:
                return self._timed_out(what, polls)

    def _timed_out(self, what: str, polls: int) -> dict[str, Any]:
        return {
            "status": "timeout",
            "message": f"Timed out after {self.timeout:g}s waiting for {what} ({polls} poll(s)).",
            "soft_fail": self.soft_fail,
        }


# condition_met, is_activated and UNTIL_CHOICES live in hooks.client_integration_state; they stay
# importable from here for code written against earlier releases.
__all__ = [
    "TRANSIENT_ERRORS",
    "UNTIL_CHOICES",
    "ClientIntegrationTrigger",
    "condition_met",
    "describe_wait",
    "is_activated",
]
