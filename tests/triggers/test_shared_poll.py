"""Triggers waiting on one connection share one poll of d6 per interval (against the sandbox)."""

from __future__ import annotations

import asyncio
import json

from airflow_provider_d6.triggers._shared_poll import active_pollers
from airflow_provider_d6.triggers.client_integrations import ClientIntegrationTrigger
from tests.pairs import pair_states

LISTING = "/api/v2/settings/clientintegrations"


def listing_requests(control) -> list[dict]:
    return [r for r in control.requests() if r["method"] == "GET" and r["path"] == LISTING]


def walks(requests: list[dict]) -> int:
    """Count the walks of the whole listing: each starts with a request that carries no cursor."""
    return sum(1 for r in requests if "cursor" not in r["query"])


def waiting_pairs(control, count: int) -> list[tuple[int, int]]:
    pairs = [pair for pair, state in pair_states(control).items() if state is None]
    assert len(pairs) >= count, "the seeded district has too few unauthorised pairs"
    return pairs[:count]


def trigger(pair, conn_id="d6_default", **options) -> ClientIntegrationTrigger:
    options.setdefault("poke_interval", 0.3)
    options.setdefault("timeout", 120)
    return ClientIntegrationTrigger(pair[0], pair[1], "authorised", conn_id, **options)


async def first_payload(trigger: ClientIntegrationTrigger) -> dict:
    return (await trigger.run().__anext__()).payload


async def until(condition, timeout: float = 60.0) -> None:
    """Wait (polling the sandbox from a thread) until *condition()* holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(condition):
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


def test_many_triggers_share_one_walk_of_the_listing_per_interval(sandbox, d6_conn):
    control = sandbox.control
    pairs = waiting_pairs(control, 16)
    control.clear_requests()

    async def scenario():
        tasks = [asyncio.create_task(first_payload(trigger(pair))) for pair in pairs]
        # Let them wait through three polls, then play every school authorising at once.
        await until(lambda: walks(listing_requests(control)) >= 3)
        pollers = active_pollers()
        assert list(pollers) == ["d6_default"] and pollers["d6_default"].waiting == len(pairs)
        for school_id, api_type_id in pairs:
            await asyncio.to_thread(control.authorise, school_id, api_type_id)
        payloads = await asyncio.gather(*tasks)
        return payloads, active_pollers()

    payloads, left = asyncio.run(scenario())

    assert [p["status"] for p in payloads] == ["success"] * len(pairs)
    assert [(p["record"]["school_id"], p["record"]["api_type_id"]) for p in payloads] == pairs
    assert left == {}
    requests = listing_requests(control)
    # One shared walk of the whole listing per poll, never one filtered lookup per trigger.
    assert all("school_id" not in r["query"] for r in requests)
    listed = len(control.data("client_integrations"))
    assert walks(requests) >= 4 and len(requests) <= walks(requests) * (listed // 10 + 1)
    assert len(requests) < len(pairs) * walks(requests) / 2


def test_a_cancelled_trigger_releases_its_share_and_the_last_stops_the_polls(sandbox, d6_conn):
    control = sandbox.control
    first, second = waiting_pairs(control, 2)

    async def scenario():
        one = asyncio.create_task(first_payload(trigger(first, poke_interval=0.1)))
        two = asyncio.create_task(first_payload(trigger(second, poke_interval=0.1)))
        await until(lambda: len(listing_requests(control)) >= 2)
        one.cancel()
        await asyncio.gather(one, return_exceptions=True)
        shared = active_pollers()["d6_default"].waiting
        two.cancel()
        await asyncio.gather(two, return_exceptions=True)
        left = active_pollers()
        polled = len(control.requests())
        await asyncio.sleep(0.5)  # five intervals: nothing may poll any more
        return shared, left, polled, len(control.requests())

    shared, left, polled, later = asyncio.run(scenario())

    assert shared == 1
    assert left == {}
    assert later == polled


def test_a_timed_out_trigger_leaves_while_the_others_go_on_waiting(sandbox, d6_conn):
    control = sandbox.control
    short, long = waiting_pairs(control, 2)

    async def scenario():
        quick = asyncio.create_task(first_payload(trigger(short, timeout=0.5)))
        patient = asyncio.create_task(first_payload(trigger(long)))
        timed_out = await quick
        waiting = active_pollers()["d6_default"].waiting
        await asyncio.to_thread(control.authorise, *long)
        return timed_out, waiting, await patient, active_pollers()

    timed_out, waiting, success, left = asyncio.run(scenario())

    assert timed_out["status"] == "timeout"
    assert f"school {short[0]} API type {short[1]}" in timed_out["message"]
    assert waiting == 1
    assert success["status"] == "success"
    assert (success["record"]["school_id"], success["record"]["api_type_id"]) == long
    assert left == {}


def test_wrong_credentials_reach_every_waiting_trigger_from_one_request(sandbox, monkeypatch):
    connection = {
        "conn_type": "d6",
        "host": sandbox.base_url,
        "login": sandbox.username,
        "password": "Wrong-password-123456",
        "extra": {"max_attempts": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(connection))
    control = sandbox.control
    pairs = waiting_pairs(control, 8)
    control.clear_requests()

    async def scenario():
        payloads = await asyncio.gather(*(first_payload(trigger(pair)) for pair in pairs))
        return payloads, active_pollers()

    payloads, left = asyncio.run(scenario())

    assert [p["status"] for p in payloads] == ["error"] * len(pairs)
    for (school_id, api_type_id), payload in zip(pairs, payloads, strict=True):
        assert f"school {school_id} API type {api_type_id}" in payload["message"]
        assert "401" in payload["message"]
        assert "Wrong-password" not in payload["message"]
    assert len(control.requests()) == 1
    assert left == {}


def test_a_failed_poll_keeps_every_trigger_waiting_until_the_next(sandbox, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_D6_DEFAULT",
        json.dumps(
            {
                "conn_type": "d6",
                "host": sandbox.base_url,
                "login": sandbox.username,
                "password": sandbox.password,
                "extra": {"max_attempts": 1},
            }
        ),
    )
    control = sandbox.control
    authorised = [pair for pair, state in pair_states(control).items() if state is not None][:6]
    control.clear_requests()
    control.set_faults(script=[{"kind": "503", "times": 2, "method": "GET"}])

    async def scenario():
        return await asyncio.gather(
            *(first_payload(trigger(pair, poke_interval=0.1)) for pair in authorised)
        )

    payloads = asyncio.run(scenario())

    assert [p["status"] for p in payloads] == ["success"] * len(authorised)
    statuses = [r["status"] for r in control.requests()]
    assert statuses[:2] == [503, 503] and set(statuses[2:]) == {200}


def test_triggers_on_different_connections_poll_separately(make_sandbox, monkeypatch):
    first, second = make_sandbox(), make_sandbox()
    for conn_id, handle in (("d6_first", first), ("d6_second", second)):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "d6",
                    "host": handle.base_url,
                    "login": handle.username,
                    "password": handle.password,
                }
            ),
        )
    pair = next(pair for pair, state in pair_states(first.control).items() if state)

    async def scenario():
        one = asyncio.create_task(first_payload(trigger(pair, "d6_first")))
        two = asyncio.create_task(first_payload(trigger(pair, "d6_second")))
        return await asyncio.gather(one, two)

    payloads = asyncio.run(scenario())

    assert [p["status"] for p in payloads] == ["success", "success"]
    assert len(listing_requests(first.control)) >= 1
    assert len(listing_requests(second.control)) >= 1
