"""TLS is verified (against the connection's CA when given), and the sandbox stays private.

The TLS tests run with ``REQUESTS_CA_BUNDLE`` set to the system bundle, as on many machines:
``requests`` then lets that bundle override a ``Session.verify`` that is not also passed on each
request, which would make an explicit ``verify`` in the connection silently ineffective.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_d6.exceptions import D6ConnectionError
from airflow_provider_d6.hooks.d6 import D6AsyncHook, D6Hook

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
LISTENING = re.compile(r"d6 sandbox listening on (https?://\S+)/api")

pytestmark = pytest.mark.timeout(120)


def system_bundle() -> str:
    """Return the system CA bundle (certifi's when the OS has none where we look)."""
    for path in SYSTEM_BUNDLES:
        if os.path.exists(path):
            return path
    import certifi

    return certifi.where()


def connect(monkeypatch: pytest.MonkeyPatch, handle: Any, **extra: Any) -> None:
    conn = {
        "conn_type": "d6",
        "host": handle.base_url,
        "login": handle.username,
        "password": handle.password,
        "extra": {"max_retries": 2, "timeout": 10, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_D6_DEFAULT", json.dumps(conn))


@pytest.fixture
def tls_sandbox(make_sandbox, monkeypatch):
    handle = make_sandbox(tls=True, schools=3, learners_per_school=5)
    assert handle.base_url.startswith("https://127.0.0.1:") and handle.ca_path
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle())
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return handle


def test_self_signed_sandbox_is_refused_by_default(tls_sandbox, monkeypatch):
    connect(monkeypatch, tls_sandbox)

    with pytest.raises(D6ConnectionError) as caught:
        D6Hook().get_client_integrations()

    assert re.search(
        r"SSL|certificate", str(caught.value) + repr(caught.value.__cause__), re.IGNORECASE
    )
    # The handshake failed, so the credential headers were never sent.
    assert tls_sandbox.control.requests() == []


def test_verify_pointing_at_the_sandbox_ca_succeeds_despite_requests_ca_bundle(
    tls_sandbox, monkeypatch
):
    connect(monkeypatch, tls_sandbox, verify=tls_sandbox.ca_path)
    # The trap this guards against: with the system bundle in the environment, a plain session
    # whose verify is the CA file still refuses the sandbox's certificate.
    session = requests.Session()
    session.verify = tls_sandbox.ca_path
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{tls_sandbox.root_url}/_sandbox/health", timeout=10)

    records = D6Hook().get_client_integrations()

    truth = tls_sandbox.control.data("client_integrations")
    assert {(r["school_id"], r["api_type_id"]) for r in records} == {
        (r["school_id"], r["api_type_id"]) for r in truth
    }
    assert [r["status"] for r in tls_sandbox.control.requests()] == [200]


def test_async_hook_verifies_tls_the_same_way(tls_sandbox, monkeypatch):
    truth = next(iter(tls_sandbox.control.data("client_integrations")))

    async def lookup() -> Any:
        hook = D6AsyncHook()
        try:
            return await hook.get_client_integration(truth["school_id"], truth["api_type_id"])
        finally:
            await hook.close()

    connect(monkeypatch, tls_sandbox)
    with pytest.raises(D6ConnectionError):
        asyncio.run(lookup())
    assert tls_sandbox.control.requests() == []

    connect(monkeypatch, tls_sandbox, verify=tls_sandbox.ca_path)
    record = asyncio.run(lookup())
    assert (record["school_id"], record["api_type_id"]) == (
        truth["school_id"],
        truth["api_type_id"],
    )


def test_sandbox_refuses_a_non_loopback_address():
    # argparse refuses before anything is bound; the timeout only guards against a regression.
    result = subprocess.run(
        [sys.executable, "-m", "d6_sandbox", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert "0.0.0.0" in result.stderr and "--allow-non-loopback" in result.stderr


def test_sandbox_never_logs_header_values(tmp_path):
    password = f"Hdr-secret-{secrets.token_hex(10)}"
    wrong = f"Hdr-wrong-{secrets.token_hex(10)}"
    username = f"user-{secrets.token_hex(6)}"
    env = {**os.environ, "D6_SANDBOX_PASSWORD": password}
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w+") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "d6_sandbox",
                "--port",
                "0",
                "--username",
                username,
                "--schools",
                "3",
                "--learners-per-school",
                "5",
                "--rate-limit",
                "0",
            ],
            stdout=out,
            stderr=err,
            env=env,
            text=True,
        )
        try:
            base_url = _wait_for_listening(out_path, proc)
            root = base_url[: -len("/api")]
            session = requests.Session()
            session.trust_env = False
            good = {
                "HTTP-X-USERNAME": username,
                "HTTP-X-PASSWORD": password,
                "HTTP-X-SCHOOLID": "1000",
            }
            bad = {**good, "HTTP-X-PASSWORD": wrong}
            statuses = [
                session.get(
                    f"{base_url}/v2/settings/clientintegrations", headers=good, timeout=10
                ).status_code,
                session.get(
                    f"{base_url}/v2/settings/clientintegrations", headers=bad, timeout=10
                ).status_code,
                session.get(
                    f"{base_url}/v2/finplus/debtmanagement/learners", headers=good, timeout=10
                ).status_code,
                session.get(f"{base_url}/v9/nowhere", headers=good, timeout=10).status_code,
            ]
            # Faults whose handling tears connections down are where servers print tracebacks.
            session.post(
                f"{root}/_sandbox/faults",
                json={"script": [{"kind": "drop", "times": 1}, {"kind": "truncated", "times": 1}]},
                timeout=10,
            )
            for _ in range(2):
                with contextlib.suppress(requests.RequestException):
                    session.get(
                        f"{base_url}/v2/settings/clientintegrations", headers=good, timeout=10
                    )
            log = session.get(f"{root}/_sandbox/requests", timeout=10).json()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert statuses == [200, 401, 200, 404]
    assert len(log) == 6
    assert all(
        set(entry) <= {"method", "path", "query", "status", "fault", "school_id", "ts"}
        for entry in log
    )
    printed = out_path.read_text() + err_path.read_text()
    exposed = json.dumps(log) + printed
    assert password not in exposed and wrong not in exposed
    assert username not in exposed


def _wait_for_listening(out_path: Path, proc: subprocess.Popen) -> str:
    """Return the base URL the sandbox prints once it listens."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = LISTENING.search(out_path.read_text())
        if match:
            return f"{match.group(1)}/api"
        if proc.poll() is not None:
            raise AssertionError(f"the sandbox exited with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("the sandbox did not start")
