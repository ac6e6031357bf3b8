"""D6Hook against a bare ``requests.Session`` loop: CPU per request, pagination speed and memory."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from bench.common import (
    ADMIN_API,
    BENCH_DIR,
    Config,
    Result,
    Target,
    alternating,
    integration_states,
    median,
    progress,
    requests_log,
    require,
    run_child,
    sandbox,
    scored,
    set_connection,
)

CPU_TARGET = Target("<=", 1.15)
THROUGHPUT_TARGET = Target(">=", 0.85)
MEMORY_TARGET = Target("<=", 10)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox logged it, replayed verbatim by the bare loop."""

    method: str
    path: str
    query: dict[str, str]
    school_id: int | None

    @classmethod
    def from_log(cls, entry: dict[str, Any]) -> LoggedRequest:
        """Build from a sandbox request-log entry.

        :param entry: one entry of ``control.requests()``
        """
        return cls(
            entry["method"], entry["path"], dict(entry.get("query") or {}), entry.get("school_id")
        )


class BareClient:
    """The leanest loop a user could write: one session, the auth headers, ``.json()``.

    ``trust_env`` is off, as in D6Hook, so that neither side pays requests' per-request proxy
    and CA-bundle lookups in the environment: the baseline is as fast as plain requests gets.
    """

    def __init__(self, handle: Any) -> None:
        base = handle.base_url
        self.origin = base[: base.index("/", base.index("//") + 2)]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update(
            {
                "HTTP-X-USERNAME": handle.username,
                "HTTP-X-PASSWORD": handle.password,
                "Accept": "application/json",
                "User-Agent": "bench-bare-requests",
            }
        )
        if handle.ca_path:
            self.session.verify = handle.ca_path

    def send(self, request: LoggedRequest, **params: str) -> Any:
        """Send *request* (with extra query *params*) and return its decoded JSON body.

        :param request: the request to replay
        :param params: query parameters added to the logged ones (the cursor)
        """
        headers = (
            {"HTTP-X-SCHOOLID": str(request.school_id)} if request.school_id is not None else None
        )
        response = self.session.request(
            request.method,
            self.origin + request.path,
            params={**request.query, **params},
            headers=headers,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        """Close the session."""
        self.session.close()


# Each round is cut into this many chunks per side, run turn about, so that both sides live
# through the same moments of a shared machine (other processes, CPU frequency, caches).
CHUNKS_PER_ROUND = 20


def _interleaved(
    sides: dict[str, Iterator[int]], first: str
) -> dict[str, tuple[float, float, int]]:
    """Advance the sides' chunk iterators turn about; return each side's (CPU s, wall s, count).

    :param sides: per side, an iterator doing one chunk of work per step and yielding its count
    :param first: the side that takes the first turn
    """
    totals = {side: [0.0, 0.0, 0] for side in sides}
    active = sorted(sides, key=lambda side: side != first)
    while active:
        for side in list(active):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            try:
                count = next(sides[side])
            except StopIteration:
                active.remove(side)
                continue
            totals[side][0] += time.process_time() - cpu0
            totals[side][1] += time.perf_counter() - wall0
            totals[side][2] += count
    return {side: (cpu, wall, count) for side, (cpu, wall, count) in totals.items()}


def _chunks(records: Iterator[Any], total: int) -> Iterator[int]:
    """Consume up to *total* items of *records* in about ``CHUNKS_PER_ROUND`` steps."""
    size = max(1, -(-total // CHUNKS_PER_ROUND))
    remaining = total
    while remaining > 0:
        count = sum(1 for _ in itertools.islice(records, min(size, remaining)))
        if not count:
            return
        remaining -= count
        yield count


def _first_pair(control: Any) -> tuple[int, int]:
    row = min(control.data("client_integrations"), key=lambda r: (r["school_id"], r["api_type_id"]))
    return int(row["school_id"]), int(row["api_type_id"])


def _cpu_one_transport(cfg: Config, d6_hook: type, tls: bool) -> dict[str, Any]:
    label = "https" if tls else "http"
    with sandbox(schools=5, learners_per_school=5, tls=tls) as handle:
        conn_id = set_connection(f"d6_bench_cpu_{label}", handle, verify=handle.ca_path)
        school_id, api_type_id = _first_pair(handle.control)
        hook = (
            d6_hook(d6_conn_id=conn_id, verify=handle.ca_path)
            if tls
            else d6_hook(d6_conn_id=conn_id)
        )
        handle.control.clear_requests()
        hook.get_client_integration(school_id, api_type_id)
        call = [LoggedRequest.from_log(entry) for entry in requests_log(handle.control)]
        if not call or any(request.method != "GET" for request in call):
            raise RuntimeError(f"get_client_integration sent {call!r}, expected GETs")
        bare = BareClient(handle)
        calls = max(1, cfg.sizes.cpu_requests // len(call))
        sent = calls * len(call)

        def hook_calls() -> Iterator[None]:
            for _ in range(calls):
                hook.get_client_integration(school_id, api_type_id)
                yield None

        def bare_calls() -> Iterator[None]:
            for _ in range(calls):
                for request in call:
                    bare.send(request)
                yield None

        # Warm both: connection set up (TLS handshake included) outside the measurement.
        for _ in range(20):
            record = hook.get_client_integration(school_id, api_type_id)
            bare.send(call[0])
        if record is None:
            raise RuntimeError(f"get_client_integration({school_id}, {api_type_id}) found nothing")
        rounds = []
        for number, hook_first in alternating(cfg.rounds):
            handle.control.clear_requests()
            sides = {"hook": _chunks(hook_calls(), calls), "bare": _chunks(bare_calls(), calls)}
            measured = _interleaved(sides, "hook" if hook_first else "bare")
            if measured["hook"][2] != calls or measured["bare"][2] != calls:
                raise RuntimeError(f"expected {calls} calls per side, measured {measured}")
            received = len(requests_log(handle.control))
            if received != 2 * sent:
                raise RuntimeError(
                    f"sandbox saw {received} requests, expected {2 * sent} (retries?)"
                )
            hook_cpu = measured["hook"][0] / sent * 1e3
            bare_cpu = measured["bare"][0] / sent * 1e3
            rounds.append(
                {"hook_cpu_ms": hook_cpu, "bare_cpu_ms": bare_cpu, "ratio": hook_cpu / bare_cpu}
            )
            progress(
                f"cpu {label} round {number + 1}/{cfg.rounds}: D6Hook {hook_cpu:.3f} ms CPU/request, "
                f"bare {bare_cpu:.3f} ms ({hook_cpu / bare_cpu:.2f}x)"
            )
        bare.close()
        return {
            "ratio": median(r["ratio"] for r in rounds),
            "hook_cpu_ms_per_request": median(r["hook_cpu_ms"] for r in rounds),
            "bare_cpu_ms_per_request": median(r["bare_cpu_ms"] for r in rounds),
            "requests_per_side_per_round": sent,
            "request": [vars(request) for request in call],
            "rounds": rounds,
        }


def cpu_per_request(cfg: Config) -> list[Result]:
    """Compare client CPU per request of D6Hook with a bare requests loop, over HTTP and HTTPS.

    :param cfg: the harness configuration
    """
    d6_hook = require("airflow_provider_d6.hooks.d6", "D6Hook").D6Hook
    transports = {"http": _cpu_one_transport(cfg, d6_hook, False)}
    transports["https"] = _cpu_one_transport(cfg, d6_hook, True)
    worst = max(t["ratio"] for t in transports.values())
    passed = all(CPU_TARGET.met(t["ratio"]) for t in transports.values())
    return [
        Result(
            name="cpu_per_request_vs_requests",
            value=worst,
            unit="ratio",
            target=str(CPU_TARGET),
            passed=passed,
            display=f"HTTP {transports['http']['ratio']:.2f}×, HTTPS {transports['https']['ratio']:.2f}×",
            details=transports,
        )
    ]


def _finance_schools(handle: Any, hook: Any) -> list[int]:
    """Return every school, each with an activated integration so that Finance+ answers for it."""
    listed = integration_states(handle.control)
    schools = sorted(int(row["school_id"]) for row in handle.control.data("schools"))
    for school_id in schools:
        if not any(active for (school, _), active in listed.items() if school == school_id):
            if (school_id, ADMIN_API) not in listed:
                handle.control.authorise(school_id, ADMIN_API)
            hook.set_client_integration_state(school_id, ADMIN_API, True)
    return schools


def _learners(hook: Any, schools: list[int], filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the learners of *schools*, one school after the other, as an export would."""
    for school_id in schools:
        yield from hook.iter_learners(school_id, **filters)


def pagination(cfg: Config) -> list[Result]:
    """Stream learners with ``iter_learners`` and a bare cursor loop; then measure peak memory.

    :param cfg: the harness configuration
    """
    d6_hook = require("airflow_provider_d6.hooks.d6", "D6Hook").D6Hook
    records = cfg.sizes.pagination_records
    # The sandbox caps a school below 100,000 learners: the walk spans as few schools as it can.
    per_school = min(records, 50_000)
    with sandbox(schools=-(-records // per_school), learners_per_school=per_school) as handle:
        conn_id = set_connection("d6_bench_pages", handle)
        hook = d6_hook(d6_conn_id=conn_id)
        schools = _finance_schools(handle, hook)
        filters = {"all_accounts": True}
        # The sandbox builds a school's learners on first access, and the hook learns d6's largest
        # page size from its first page: both happen here, before anything is measured.
        for school_id in schools:
            sum(1 for _ in itertools.islice(hook.iter_learners(school_id, **filters), 100))
        handle.control.clear_requests()
        probe = sum(1 for _ in itertools.islice(_learners(hook, schools, filters), 200))
        log = [LoggedRequest.from_log(entry) for entry in requests_log(handle.control)]
        first = log[0]
        follow = log[1] if len(log) > 1 else first
        follow = LoggedRequest(
            follow.method,
            follow.path,
            {k: v for k, v in follow.query.items() if k != "cursor"},
            follow.school_id,
        )
        bare = BareClient(handle)

        def bare_learners() -> Iterator[dict[str, Any]]:
            for school_id in schools:
                body = bare.send(dataclasses.replace(first, school_id=school_id))
                while True:
                    yield from body["data"]
                    cursor = (body.get("meta") or {}).get("next_cursor")
                    if not cursor:
                        break
                    body = bare.send(
                        dataclasses.replace(follow, school_id=school_id), cursor=cursor
                    )

        rounds = []
        for number, hook_first in alternating(cfg.rounds):
            handle.control.clear_requests()
            sides = {
                "hook": _chunks(_learners(hook, schools, filters), records),
                "bare": _chunks(bare_learners(), records),
            }
            measured = _interleaved(sides, "hook" if hook_first else "bare")
            streamed = {side: m[2] for side, m in measured.items()}
            if streamed["hook"] != streamed["bare"]:
                raise RuntimeError(f"the two walks disagree on the record count: {streamed}")
            hook_rate = streamed["hook"] / measured["hook"][1]
            bare_rate = streamed["bare"] / measured["bare"][1]
            rounds.append(
                {
                    "records": streamed["hook"],
                    "hook_records_per_s": hook_rate,
                    "bare_records_per_s": bare_rate,
                    "hook_cpu_s": measured["hook"][0],
                    "bare_cpu_s": measured["bare"][0],
                    "ratio": hook_rate / bare_rate,
                }
            )
            progress(
                f"pagination round {number + 1}/{cfg.rounds}: D6Hook {hook_rate:,.0f} records/s, "
                f"bare {bare_rate:,.0f} records/s ({hook_rate / bare_rate:.2f}x)"
            )
        bare.close()
        throughput = median(r["ratio"] for r in rounds)
        results = [
            scored(
                "pagination_throughput",
                throughput,
                THROUGHPUT_TARGET,
                display=(
                    f"{throughput:.2f}× ({median(r['hook_records_per_s'] for r in rounds):,.0f} vs "
                    f"{median(r['bare_records_per_s'] for r in rounds):,.0f} records/s)"
                ),
                details={
                    "records": rounds[0]["records"],
                    "schools": len(schools),
                    "probe_records": probe,
                    "first_request": vars(first),
                    "next_request": vars(follow),
                    "hook_records_per_s": median(r["hook_records_per_s"] for r in rounds),
                    "bare_records_per_s": median(r["bare_records_per_s"] for r in rounds),
                    "rounds": rounds,
                },
            )
        ]
        results.append(_memory(cfg, conn_id, schools, filters))
        return results


def _memory(cfg: Config, conn_id: str, schools: list[int], filters: dict[str, Any]) -> Result:
    """Stream each size in a fresh interpreter so that the two peaks are independent."""
    small, large = cfg.sizes.memory_sizes
    rounds = []
    for number, small_first in alternating(cfg.rounds):
        peaks = {}
        for size in (small, large) if small_first else (large, small):
            spec = {"conn_id": conn_id, "schools": schools, "records": size, "filters": filters}
            peaks[size] = run_child([str(BENCH_DIR / "_memory_child.py"), json.dumps(spec)])
        if peaks[small]["records"] != small or peaks[large]["records"] != large:
            raise RuntimeError(f"the memory children streamed {peaks} records")
        growth = peaks[large]["growth_mb"] - peaks[small]["growth_mb"]
        rounds.append({"growth_mb": growth, "small": peaks[small], "large": peaks[large]})
        progress(
            f"memory round {number + 1}/{cfg.rounds}: peak RSS grew {peaks[small]['growth_mb']:.1f} MB "
            f"streaming {small:,}, {peaks[large]['growth_mb']:.1f} MB streaming {large:,} "
            f"(difference {growth:+.1f} MB)"
        )
    growth = median(r["growth_mb"] for r in rounds)
    return Result(
        name="pagination_memory",
        value=growth,
        unit="MB",
        target=str(MEMORY_TARGET),
        passed=MEMORY_TARGET.met(growth),
        display=f"{growth:+.1f} MB ({small:,} → {large:,} learners)",
        details={
            "sizes": [small, large],
            "value_is": "peak RSS growth while streaming the large size minus the small size",
            "peak_growth_mb_small": median(r["small"]["growth_mb"] for r in rounds),
            "peak_growth_mb_large": median(r["large"]["growth_mb"] for r in rounds),
            "peak_rss_mb_small": median(r["small"]["maxrss_mb"] for r in rounds),
            "peak_rss_mb_large": median(r["large"]["maxrss_mb"] for r in rounds),
            "rounds": rounds,
        },
    )
