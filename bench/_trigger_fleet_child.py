"""Child of ``trigger_fleet``: run N ClientIntegrationTriggers in one event loop, as a triggerer does.

Argument: one JSON document with ``conn_id``, ``control_url``, ``pairs`` (awaited, not yet
authorised), ``authorise`` (``[[school_id, api_type_id, seconds_after_start], ...]``: played from
a thread, as the schools would), ``poke_interval`` and ``duration_s``. Prints one JSON line:
RSS before and while waiting, CPU per interval, the polls taken and each authorised pair's
authorise-to-fire latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Return the current resident set size in MB (not the peak: growth is what is measured)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def main() -> None:
    args = json.loads(sys.argv[1])
    # Everything a triggerer has loaded before its first d6 trigger: Airflow, aiohttp, the hook.
    import aiohttp  # noqa: F401

    import airflow_provider_d6.hooks.d6_async  # noqa: F401
    from airflow_provider_d6.triggers import _shared_poll
    from airflow_provider_d6.triggers.client_integrations import ClientIntegrationTrigger
    from d6_sandbox.testing import SandboxControl

    control = SandboxControl(args["control_url"])
    interval = float(args["poke_interval"])
    duration = float(args["duration_s"])
    authorised_at: dict[tuple[int, int], float] = {}
    fired_at: dict[tuple[int, int], float] = {}
    statuses: dict[str, int] = {}

    def play_schools(start: float, stop: threading.Event) -> None:
        for school_id, api_type_id, after in sorted(args["authorise"], key=lambda a: a[2]):
            if stop.wait(max(0.0, start + after - time.monotonic())):
                return
            control.authorise(school_id, api_type_id)
            authorised_at[(school_id, api_type_id)] = time.monotonic()

    async def one(trigger: ClientIntegrationTrigger) -> None:
        async for event in trigger.run():
            fired_at[(trigger.school_id, trigger.api_type_id)] = time.monotonic()
            statuses[event.payload["status"]] = statuses.get(event.payload["status"], 0) + 1

    async def fleet() -> dict:
        rss_before = rss_mb()
        # Built from serialized kwargs, as the triggerer rebuilds every trigger it runs.
        triggers = [
            ClientIntegrationTrigger(
                **ClientIntegrationTrigger(
                    school_id,
                    api_type_id,
                    "authorised",
                    args["conn_id"],
                    poke_interval=interval,
                    timeout=duration + 3600,
                ).serialize()[1]
            )
            for school_id, api_type_id in args["pairs"]
        ]
        tasks = [asyncio.create_task(one(trigger)) for trigger in triggers]
        # One interval to settle (the first poll, the connection read), then measure.
        await asyncio.sleep(interval)
        poller = _shared_poll.active_pollers()[args["conn_id"]]
        await asyncio.to_thread(control.clear_requests)
        start = time.monotonic()
        cpu_start = time.process_time()
        polls_start = poller.polls
        stop = threading.Event()
        player = threading.Thread(target=play_schools, args=(start, stop), daemon=True)
        player.start()
        rss_peak_waiting = rss_mb()
        while time.monotonic() - start < duration:
            await asyncio.sleep(min(interval / 4, duration))
            rss_peak_waiting = max(rss_peak_waiting, rss_mb())
        cpu = time.process_time() - cpu_start
        elapsed = time.monotonic() - start
        polls = poller.polls - polls_start
        log = await asyncio.to_thread(control.requests)
        stop.set()
        player.join()
        # Wind down: the authorised ones have fired; cancel the rest as a triggerer would on
        # shutdown, and check that nothing is left behind.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = len(_shared_poll.active_pollers())
        return {
            "triggers": len(triggers),
            "rss_before_mb": rss_before,
            "rss_waiting_mb": rss_peak_waiting,
            "rss_growth_mb": rss_peak_waiting - rss_before,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "intervals": elapsed / interval,
            "cpu_per_interval_s": cpu / (elapsed / interval),
            "polls": polls,
            "d6_requests": len(log),
            "d6_requests_per_interval": len(log) / (elapsed / interval),
            "status_counts": {
                str(code): sum(1 for r in log if r["status"] == code)
                for code in sorted({r["status"] for r in log})
            },
            "pollers_left": left,
            "statuses": statuses,
            "latency_s": {
                f"{pair[0]}/{pair[1]}": fired_at[pair] - at
                for pair, at in authorised_at.items()
                if pair in fired_at
            },
            "authorised": len(authorised_at),
            "wall_clock_start": time.time() - (time.monotonic() - start),
        }

    print(json.dumps(asyncio.run(fleet())))


if __name__ == "__main__":
    main()
