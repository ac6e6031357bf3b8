"""A fleet of waiting ClientIntegrationTriggers in one triggerer: requests, latency, RSS and CPU."""

from __future__ import annotations

import json
import random

from bench.common import (
    BENCH_DIR,
    Config,
    Result,
    Target,
    integration_states,
    median,
    progress,
    require,
    run_child,
    sandbox,
    set_connection,
)

FEWER_TARGET = Target(">=", 10, "latency ≤ 1 interval, RSS ≤ 50 MB, keeps the interval")
RSS_LIMIT_MB = 50.0


def trigger_fleet(cfg: Config) -> list[Result]:
    """Run many triggers waiting on one connection in one event loop, schools authorising meanwhile.

    :param cfg: the harness configuration
    """
    require("airflow_provider_d6.triggers._shared_poll", "the shared trigger poller")
    sizes = cfg.sizes
    count, interval = sizes.fleet_triggers, sizes.fleet_poke_interval_s
    duration = interval * sizes.fleet_intervals
    with sandbox(schools=sizes.fleet_schools, learners_per_school=1) as handle:
        listed = integration_states(handle.control)
        schools = sorted(int(row["school_id"]) for row in handle.control.data("schools"))
        waiting = [(s, a) for s in schools for a in (8, 9) if (s, a) not in listed]
        if len(waiting) < count:
            raise RuntimeError(f"only {len(waiting)} unauthorised pairs for {count} triggers")
        pairs = waiting[:count]
        rng = random.Random(17)
        # Schools authorise at random moments (so at every phase of the poll) up to 1.5
        # intervals before the end, leaving time for the poll that must see each one.
        authorise = [
            [*pair, rng.uniform(0.1, duration - 1.5 * interval)]
            for pair in rng.sample(pairs, sizes.fleet_authorisations)
        ]
        conn_id = set_connection("d6_bench_fleet", handle)
        progress(
            f"trigger_fleet: {count} triggers, {len(listed)} pairs listed, "
            f"poke_interval {interval:g}s for {duration:g}s"
        )
        out = run_child(
            [
                str(BENCH_DIR / "_trigger_fleet_child.py"),
                json.dumps(
                    {
                        "conn_id": conn_id,
                        "control_url": handle.root_url,
                        "pairs": pairs,
                        "authorise": authorise,
                        "poke_interval": interval,
                        "duration_s": duration,
                    }
                ),
            ],
            timeout=duration + 300,
        )
    per_interval = out["d6_requests_per_interval"]
    fewer = count / per_interval if per_interval else float("inf")
    latencies = sorted(out["latency_s"].values())
    worst = max(latencies) if latencies else float("inf")
    every_fired = len(latencies) == out["authorised"] == sizes.fleet_authorisations
    # Keeping the interval: at least as many polls as whole intervals elapsed.
    kept_interval = out["polls"] >= int(out["intervals"])
    passed = (
        FEWER_TARGET.met(fewer)
        and every_fired
        and worst <= interval
        and out["rss_growth_mb"] <= RSS_LIMIT_MB
        and kept_interval
        and out["pollers_left"] == 0
    )
    progress(
        f"trigger_fleet: {per_interval:.1f} requests per interval ({fewer:.0f}x fewer), "
        f"latency max {worst:.2f}s, RSS +{out['rss_growth_mb']:.1f} MB, "
        f"CPU {out['cpu_per_interval_s']:.2f}s per {interval:g}s interval, {out['polls']} polls"
    )
    return [
        Result(
            name="trigger_fleet",
            value=fewer,
            unit="ratio",
            target=str(FEWER_TARGET),
            passed=passed,
            display=(
                f"{fewer:.0f}× fewer ({per_interval:.0f} requests per {interval:g} s interval "
                f"for {count} triggers); authorise-to-fire ≤ {worst:.1f} s (median "
                f"{median(latencies):.1f} s); RSS +{out['rss_growth_mb']:.0f} MB; "
                f"CPU {out['cpu_per_interval_s']:.2f} s per interval"
                if latencies
                else f"{fewer:.0f}× fewer; no trigger fired"
            ),
            details={
                "triggers": count,
                "pairs_listed": len(listed),
                "poke_interval_s": interval,
                "one_call_per_trigger_per_interval": count,
                "requests_per_interval": per_interval,
                "latency_max_s": worst,
                "latency_median_s": median(latencies) if latencies else None,
                "every_authorised_trigger_fired": every_fired,
                "kept_the_interval": kept_interval,
                **out,
            },
        )
    ]
