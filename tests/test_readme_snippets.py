"""Every ```python block of README.md runs as written after the quick start.

The quick start starts the sandbox with its defaults (user ``sandbox-user``, password
``sandbox-pass``, 25 schools, seed 1, 20 requests per second) and exports ``d6_default`` as
``AIRFLOW_CONN_D6_DEFAULT``. Here the same sandbox runs on port 0 and a child Python process runs
the blocks one after the other in one namespace, as a reader pasting them into one session would.
A block preceded by ``<!-- snippet: skip REASON -->`` is not run; the reason is required.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from d6_sandbox.testing import run_sandbox
from tests.support import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP = re.compile(r"<!--\s*snippet:\s*skip\b(.*?)-->\s*$", re.S)
# Snippets take a while on a shared 2-core machine (imports, paged walks at 20 req/s).
RUN_TIMEOUT_S = 240

# The child: run each block in order in one fresh namespace; on the first failure print which
# block broke (its README line) with the traceback and exit 1.
RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    blocks = json.load(sys.stdin)
    namespace = {"__name__": "__readme__"}
    for line, source in blocks:
        try:
            exec(compile(source, f"README.md:{line}", "exec"), namespace)
        except BaseException:
            print(f"README block at line {line} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        print(f"ok README.md:{line}", flush=True)
    """
)


def readme_blocks(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Return (blocks to run, skipped blocks) as (line number, source or skip reason)."""
    run, skipped = [], []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 2  # the first line of code
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        if skip:
            skipped.append((line, skip.group(1).strip()))
        else:
            run.append((line, match.group(1)))
    return run, skipped


def run_blocks(blocks, env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    home = tmp_path / "airflow-home"
    home.mkdir(exist_ok=True)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture
def quick_start_sandbox():
    # The quick start's sandbox: `make sandbox` with no flags, here on a free port.
    with run_sandbox(rate_limit=20) as handle:
        yield handle


def quick_start_env(handle) -> dict[str, str]:
    conn = {
        "conn_type": "d6",
        "host": handle.base_url,
        "login": "sandbox-user",
        "password": "sandbox-pass",
    }
    return {"AIRFLOW_CONN_D6_DEFAULT": json.dumps(conn)}


def test_every_readme_python_block_runs_against_the_quick_start_sandbox(
    quick_start_sandbox, tmp_path
):
    run, skipped = readme_blocks(README.read_text(encoding="utf-8"))
    assert len(run) >= 5, "the README's Python examples were not found"
    # Skips are for DAG definitions that need a full Airflow; each must say why, and stay few.
    assert all(reason for _, reason in skipped), f"a skip without a reason: {skipped}"
    assert len(skipped) <= 3, f"too many README blocks skipped: {skipped}"
    result = run_blocks(run, quick_start_env(quick_start_sandbox), tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    assert result.stdout.count("ok README.md:") == len(run)
    # The snippets did reach the sandbox (the hook's calls, not only imports).
    paths = {r["path"] for r in quick_start_sandbox.control.requests()}
    assert "/api/v2/finplus/debtmanagement/debtornotes/notes" in paths


def test_a_broken_block_fails_naming_its_line(quick_start_sandbox, tmp_path):
    text = (
        "Intro\n\n```python\nfrom airflow_provider_d6.hooks.d6 import D6Hook\n"
        'hook = D6Hook("d6_default")\n```\n\n'
        "<!-- snippet: skip needs a scheduler -->\n```python\nraise SystemExit(3)\n```\n\n"
        "```python\n"
        "hook.create_note(1000, accountable_person_id=13000007, date='2026-01-01',"
        " note_type_id=1, communication_type_id=2, note='x')\n```\n"
    )
    run, skipped = readme_blocks(text)
    assert [line for line, _ in run] == [4, 14] and skipped == [(10, "needs a scheduler")]
    result = run_blocks(run, quick_start_env(quick_start_sandbox), tmp_path)
    assert result.returncode == 1
    assert "README block at line 14 failed" in result.stderr
    assert "accountable person" in result.stderr
