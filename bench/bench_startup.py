"""What the provider costs before any request: import time and DAG-file parse time."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import (
    BENCH_DIR,
    PROJECT_ROOT,
    Config,
    Result,
    Skip,
    Target,
    child_env,
    median,
    progress,
    require,
    run_child,
)

IMPORT_TARGET = Target("<=", 50)
PARSE_TARGET = Target("<=", 300, "each file")

PROVIDER_MODULES = (
    "airflow_provider_d6.operators.client_integrations",
    "airflow_provider_d6.operators.storage",
    "airflow_provider_d6.operators.debtor_notes",
    "airflow_provider_d6.sensors.client_integrations",
    "airflow_provider_d6.triggers.client_integrations",
)

# Timed inside the fresh interpreter so that interpreter start-up noise is left out.
_IMPORT_PROBE = """
import importlib, json, sys, time
started = time.perf_counter()
import airflow.sdk
sdk_done = time.perf_counter()
for name in sys.argv[1:]:
    importlib.import_module(name)
done = time.perf_counter()
print(json.dumps({"sdk_s": sdk_done - started, "extra_s": done - sdk_done, "total_s": done - started}))
"""


def _installed_like_env(cfg: Config) -> dict[str, str]:
    """Return a child environment that caches bytecode, as a pip-installed wheel has it.

    This checkout is an editable install and the machine may set ``PYTHONDONTWRITEBYTECODE``, so
    without a cache every start would compile the provider from source, which users never pay.
    The cache goes to a scratch folder, never into the checkout.
    """
    env = child_env(PYTHONPYCACHEPREFIX=str(cfg.workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def import_cost(cfg: Config) -> list[Result]:
    """Time ``import airflow.sdk`` alone and followed by the provider modules, fresh each time.

    :param cfg: the harness configuration
    """
    for module in PROVIDER_MODULES:
        require(module, module)
    env = _installed_like_env(cfg)
    # One untimed start: Airflow writes its config, bytecode is cached, the OS caches the files.
    run_child(["-c", _IMPORT_PROBE, *PROVIDER_MODULES], env=env)
    bare, provider = [], []
    for number in range(cfg.sizes.import_interpreters):
        sides = [("bare", ()), ("provider", PROVIDER_MODULES)]
        for side, modules in sides if number % 2 == 0 else sides[::-1]:
            timing = run_child(["-c", _IMPORT_PROBE, *modules], env=env)
            (bare if side == "bare" else provider).append(timing)
    extra_ms = median(t["extra_s"] for t in provider) * 1e3
    difference_ms = (
        median(t["total_s"] for t in provider) - median(t["total_s"] for t in bare)
    ) * 1e3
    progress(
        f"import_cost: +{extra_ms:.1f} ms on top of airflow.sdk "
        f"(median total {median(t['total_s'] for t in provider):.3f}s vs {median(t['total_s'] for t in bare):.3f}s)"
    )
    return [
        Result(
            name="import_cost",
            value=extra_ms,
            unit="ms",
            target=str(IMPORT_TARGET),
            passed=IMPORT_TARGET.met(extra_ms),
            display=f"+{extra_ms:.0f} ms",
            details={
                "interpreters_each": cfg.sizes.import_interpreters,
                "bytecode_cached": True,
                "modules": list(PROVIDER_MODULES),
                "median_extra_ms_in_process": extra_ms,
                "median_total_difference_ms": difference_ms,
                "airflow_sdk_ms": median(t["sdk_s"] for t in bare) * 1e3,
                "provider_runs": provider,
                "bare_runs": bare,
            },
        )
    ]


def dag_parse(cfg: Config) -> list[Result]:
    """Parse each file in ``dags/`` with Airflow's DagBag in a fork, as the DAG processor does.

    :param cfg: the harness configuration
    """
    files = sorted(
        str(path) for path in (PROJECT_ROOT / "dags").glob("*.py") if path.name != "__init__.py"
    )
    if not files:
        raise Skip("no DAG files in dags/ yet")
    spec = {"files": files, "rounds": cfg.sizes.dag_parse_rounds}
    runs = run_child(
        [str(BENCH_DIR / "_dagparse_child.py"), json.dumps(spec)], env=_installed_like_env(cfg)
    )["runs"]
    per_file = {}
    for path in files:
        mine = [run for run in runs if run["file"] == path]
        per_file[Path(path).name] = {
            "median_ms": median(run["seconds"] for run in mine) * 1e3,
            "dags": mine[0]["dags"],
            "import_errors": mine[0]["import_errors"],
            "runs_ms": [run["seconds"] * 1e3 for run in mine],
        }
        progress(f"dag_parse {Path(path).name}: {per_file[Path(path).name]['median_ms']:.0f} ms")
    worst = max(entry["median_ms"] for entry in per_file.values())
    clean = all(entry["dags"] > 0 and not entry["import_errors"] for entry in per_file.values())
    return [
        Result(
            name="dag_parse",
            value=worst,
            unit="ms",
            target=str(PARSE_TARGET),
            passed=PARSE_TARGET.met(worst) and clean,
            display=", ".join(
                f"{name} {entry['median_ms']:.0f} ms" for name, entry in per_file.items()
            ),
            details={
                "rounds": cfg.sizes.dag_parse_rounds,
                "bytecode_cached": True,
                "method": "DagBag of one file in a fork of a process that imported Airflow, as "
                "Airflow's DAG processor parses",
                "value_is": "slowest file's median",
                "files": per_file,
            },
        )
    ]
