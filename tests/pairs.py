"""Find school × API type pairs in a given onboarding state in the sandbox's ground truth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_d6.hooks.client_integration_state import is_activated


def pair_states(control) -> dict[tuple[int, int], bool | None]:
    """Return every school × API type pair: True/False when listed (activated?), None when not."""
    listed = {
        (record["school_id"], record["api_type_id"]): is_activated(record)
        for record in control.data("client_integrations")
    }
    schools = [school["school_id"] for school in control.data("schools")]
    return {(school, api): listed.get((school, api)) for school in schools for api in (8, 9)}


def pick(control, state: bool | None) -> tuple[int, int]:
    """Return the first pair in *state* (None: not authorised by its school)."""
    return next(pair for pair, value in pair_states(control).items() if value is state)


def finance_school(control) -> int:
    """Return a school Finance+ answers for (it has an activated integration)."""
    return pick(control, True)[0]


def closed_school(control) -> int:
    """Return a school with no activated integration (Finance+ answers 401 for it)."""
    states = pair_states(control)
    active = {school for (school, _), state in states.items() if state}
    return next(school for school, _ in states if school not in active)


@contextmanager
def authorised_after(control, pair: tuple[int, int], polls: int) -> Iterator[None]:
    """Authorise *pair* once d6 has answered *polls* GETs for it, from a background thread.

    Counting the polls, not timing them, keeps "it waited, then saw the change" true however
    slowly the machine runs.
    """
    school, api = pair
    done = threading.Event()

    def seen() -> int:
        return sum(
            1
            for r in control.requests()
            if r["method"] == "GET"
            and r["path"].endswith("/clientintegrations")
            and r["query"].get("school_id") == str(school)
            and r["query"].get("api_type_id") == str(api)
        )

    def watch() -> None:
        while not done.is_set():
            if seen() >= polls:
                control.authorise(school, api)
                return
            done.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
