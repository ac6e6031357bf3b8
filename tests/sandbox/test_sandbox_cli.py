"""The ``d6-sandbox`` command, TLS, process mode and a district of 100,000 learners."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sandbox_client import CLIENT_INTEGRATIONS, FIN, D6Client

from d6_sandbox.testing import run_sandbox

SANDBOX_BIN = Path(sys.executable).with_name("d6-sandbox")
LINE = re.compile(r"d6 sandbox listening on (https?)://127\.0\.0\.1:(\d+)/api\n\Z")
AUTH = {"HTTP-X-USERNAME": "sandbox-user", "HTTP-X-PASSWORD": "sandbox-pass"}


def _start(*flags: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "D6_SANDBOX_PASSWORD"}
    return subprocess.Popen(
        [str(SANDBOX_BIN), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def test_cli_prints_one_line_and_serves_the_api():
    proc = _start("--schools", "3", "--learners-per-school", "10", "--rate-limit", "0")
    try:
        line = proc.stdout.readline()
        match = LINE.match(line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(2)}/api"
        reply = requests.get(f"{base}{CLIENT_INTEGRATIONS}", headers=AUTH, timeout=10)
        assert reply.status_code == 200
        assert reply.json()["data"][0]["school_name"] == "d6+ Primary School"
        assert requests.get(f"{base}{CLIENT_INTEGRATIONS}", timeout=10).status_code == 401
    finally:
        _stop(proc)
    assert proc.returncode == 0


def test_cli_tls_serves_https_with_a_ca_it_prints():
    proc = _start("--tls", "--schools", "2", "--learners-per-school", "5")
    try:
        match = LINE.match(proc.stdout.readline())
        assert match and match.group(1) == "https"
        ca_path = proc.stdout.readline().strip()
        assert Path(ca_path).is_file()
        base = f"https://127.0.0.1:{match.group(2)}/api"
        reply = requests.get(
            f"{base}{CLIENT_INTEGRATIONS}", headers=AUTH, timeout=10, verify=ca_path
        )
        assert reply.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}{CLIENT_INTEGRATIONS}", headers=AUTH, timeout=10, verify=True)
    finally:
        _stop(proc)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org"])
def test_cli_refuses_a_non_loopback_host(host):
    result = subprocess.run(
        [str(SANDBOX_BIN), "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--allow-non-loopback" in result.stderr


def test_cli_rejects_bad_settings():
    result = subprocess.run(
        [str(SANDBOX_BIN), "--port", "0", "--default-limit", "80"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "default_limit" in result.stderr


def test_process_mode_passes_the_password_outside_argv_and_serves():
    with run_sandbox(
        process=True, schools=3, learners_per_school=10, password="Pr0cess-mode-secret"
    ) as handle:
        d6 = D6Client(handle)
        assert d6.get(CLIENT_INTEGRATIONS).status_code == 200
        assert d6.control.requests()[0]["status"] == 200
        port = handle.base_url.rsplit(":", 1)[1].split("/")[0]
        cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if _readable(p)]
        ours = [c for c in cmdlines if b"d6_sandbox" in c]
        assert ours and not any(b"Pr0cess-mode-secret" in c for c in ours), port


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_thread_mode_tls_exposes_the_ca_path():
    with run_sandbox(tls=True, schools=2, learners_per_school=5) as handle:
        assert handle.base_url.startswith("https://") and handle.ca_path
        assert D6Client(handle).get(CLIENT_INTEGRATIONS).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(handle.base_url + CLIENT_INTEGRATIONS, timeout=10)


def test_a_district_of_100000_learners_serves_each_school():
    with run_sandbox(schools=200, learners_per_school=500) as handle:
        d6 = D6Client(handle)
        schools = d6.control.data("schools")
        assert len(schools) == 200 and schools[-1]["school_id"] == 1199
        last_open = d6.walk(f"{FIN}/schools", params={"limit": 50})[-1]["school_id"]
        learners = d6.control.data("learners", last_open)
        assert len(learners) == 500
        page = d6.get(
            f"{FIN}/learners", school_id=last_open, params={"all_accounts": 1, "limit": 50}
        ).json()
        assert len(page["data"]) == 50 and "next_cursor" in page["meta"]


def test_help_shows_the_defaults_the_readme_curl_lines_rely_on():
    env = {**os.environ, "D6_SANDBOX_PASSWORD": "Env-only-secret-5c1f"}
    result = subprocess.run(
        [str(SANDBOX_BIN), "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for shown in (
        "--port PORT port to bind; 0 picks a free one (default: 8600)",
        "(default: 127.0.0.1)",
        "integrator username to accept (default: sandbox-user)",
        "$D6_SANDBOX_PASSWORD if set, else sandbox-pass",
        "(default: 20.0)",
        "--profile {docs,live}",
        "(default: live)",
        "--type8-label {docs,live}",
    ):
        assert shown in text, shown
    assert "Env-only-secret" not in result.stdout + result.stderr


def test_the_profile_and_type8_label_flags_reach_the_served_api():
    proc = _start(
        "--schools", "2", "--learners-per-school", "5", "--profile", "docs", "--type8-label", "live"
    )
    try:
        match = LINE.match(proc.stdout.readline())
        assert match
        base = f"http://127.0.0.1:{match.group(2)}/api"
        listed = requests.get(f"{base}{CLIENT_INTEGRATIONS}", headers=AUTH, timeout=10).json()
        assert {r["api_type"] for r in listed["data"] if r["api_type_id"] == 8} == {
            "d6 Integrate API"
        }
        body = {"school_id": 1001, "api_type_id": 8, "state": 1}
        reply = requests.patch(f"{base}{CLIENT_INTEGRATIONS}", json=body, headers=AUTH, timeout=10)
        assert reply.status_code == 200  # the docs profile serves the v2 activation route
    finally:
        _stop(proc)


def test_an_unknown_profile_is_refused_by_the_command_line():
    result = subprocess.run(
        [str(SANDBOX_BIN), "--profile", "staging"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "live" in result.stderr and "docs" in result.stderr
