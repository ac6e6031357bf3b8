"""The sandbox against a web page in the developer's browser: CSRF, DNS rebinding, bad headers.

A page on another origin can make the browser send "simple" requests (GET, or a POST of
``text/plain``, form or multipart data) to 127.0.0.1 without a CORS preflight; with DNS rebinding
its own host name resolves to 127.0.0.1 and every request is same-origin to the browser. These
tests send what such a browser sends, over real HTTP, and check that nothing changes.
"""

from __future__ import annotations

import http.client
import logging
import socket

import pytest
import requests

from d6_sandbox.testing import SandboxHandle

EVIL = "http://evil.example"
AUTHORISE_BODY = '{"school_id": 1003, "api_type_id": 8}'  # school 1003 has authorised nothing


@pytest.fixture
def small(make_sandbox) -> SandboxHandle:
    return make_sandbox(schools=8, learners_per_school=5)


def _port(handle: SandboxHandle) -> int:
    return int(handle.root_url.rsplit(":", 1)[1])


def _send(handle: SandboxHandle, method: str, path: str, body: str = "", **headers: str):
    """Send one request with exactly *headers* (http.client adds none but Host when not given)."""
    conn = http.client.HTTPConnection("127.0.0.1", _port(handle), timeout=30)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        data = body.encode()
        if data:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data or None)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _authorised(handle: SandboxHandle, school_id: int = 1003) -> bool:
    return any(r["school_id"] == school_id for r in handle.control.data("client_integrations"))


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_a_cross_origin_simple_post_changes_nothing(small, content_type):
    headers = {"Origin": EVIL}
    if content_type:
        headers["Content-Type"] = content_type
    status, body = _send(small, "POST", "/_sandbox/authorise", AUTHORISE_BODY, **headers)
    assert status == 403, body
    assert not _authorised(small)
    status, _ = _send(small, "POST", "/_sandbox/reset", "{}", **headers)
    assert status == 403


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_simple_post_without_an_origin_is_refused_too(small, content_type):
    # Older browsers and some redirects send no Origin: the media type alone must refuse it.
    status, body = _send(
        small, "POST", "/_sandbox/authorise", AUTHORISE_BODY, **{"Content-Type": content_type}
    )
    assert status == 403
    assert b"application/json" in body  # says what to send instead
    assert not _authorised(small)


def test_json_from_a_foreign_origin_or_a_cross_site_fetch_is_refused(small):
    json_type = {"Content-Type": "application/json"}
    status, _ = _send(
        small, "POST", "/_sandbox/authorise", AUTHORISE_BODY, Origin=EVIL, **json_type
    )
    assert status == 403
    status, _ = _send(
        small,
        "POST",
        "/_sandbox/authorise",
        AUTHORISE_BODY,
        **{"Sec-Fetch-Site": "cross-site"},
        **json_type,
    )
    assert status == 403
    status, _ = _send(small, "GET", "/_sandbox/data/client_integrations", Origin=EVIL)
    assert status == 403
    assert not _authorised(small)


def test_the_sandboxs_own_clients_still_work(small):
    json_type = {"Content-Type": "application/json"}
    own = f"http://127.0.0.1:{_port(small)}"
    status, _ = _send(small, "POST", "/_sandbox/authorise", AUTHORISE_BODY, Origin=own, **json_type)
    assert status == 200 and _authorised(small)
    small.control.deauthorise(1003, 8)  # the Python client: JSON, no Origin
    assert not _authorised(small)
    small.control.reset()
    small.control.clear_faults()
    status, _ = _send(small, "POST", "/_sandbox/reset", **json_type)  # an empty JSON POST
    assert status == 200


@pytest.mark.parametrize("path", ["/_sandbox/data/client_integrations", "/api/v1/settings/clients"])
def test_dns_rebinding_a_foreign_host_name_is_refused(small, path):
    port = _port(small)
    auth = {"HTTP-X-USERNAME": small.username, "HTTP-X-PASSWORD": small.password}
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", "evil.example", ""):
        status, body = _send(small, "GET", path, Host=host, **auth)
        assert status == 421, (host, body)
        assert b"1003" not in body and b"school_name" not in body
    status, _ = _send(
        small,
        "POST",
        "/_sandbox/authorise",
        AUTHORISE_BODY,
        Host=f"evil.example:{port}",
        **{"Content-Type": "application/json"},
    )
    assert status == 421 and not _authorised(small)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, _ = _send(small, "GET", path, Host=host, **auth)
        assert status == 200, host


def test_a_non_utf8_header_gets_a_400_naming_it_not_a_500(small):
    session = requests.Session()
    session.trust_env = False
    reply = session.get(
        f"{small.base_url}/v1/settings/clients",
        headers={"HTTP-X-USERNAME": small.username, "HTTP-X-PASSWORD": b"\xff\xfepw"},
        timeout=30,
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "Bad Request",
        "error_description": "The HTTP-X-PASSWORD header is not valid UTF-8.",
    }
    v2 = session.get(
        f"{small.base_url}/v2/settings/clientintegrations",
        headers={"HTTP-X-USERNAME": b"\xe9t\xe9", "HTTP-X-PASSWORD": small.password},
        timeout=30,
    )
    assert v2.status_code == 400
    assert v2.json() == {
        "success": False,
        "message": "The HTTP-X-USERNAME header is not valid UTF-8.",
    }
    control = session.get(
        f"{small.root_url}/_sandbox/requests", headers={"X-Note": b"\x80"}, timeout=30
    )
    assert control.status_code == 400 and "X-Note" in control.json()["error"]
    assert small.control.requests() == []  # refused before anything was served


def _raw(handle: SandboxHandle, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", _port(handle)), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("control_char", ["\x01", "\x7f", "\x1b[2J"])
def test_a_password_with_control_characters_is_never_echoed_or_logged(
    make_sandbox, caplog, control_char
):
    secret = f"Ctl-secret-{control_char}-9d41e7"
    handle = make_sandbox(schools=2, learners_per_school=5, password=secret)
    caplog.set_level(logging.DEBUG)
    port = _port(handle)
    reply = _raw(
        handle,
        (
            f"GET /api/v1/settings/clients HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"HTTP-X-USERNAME: {handle.username}\r\nHTTP-X-PASSWORD: {secret}\r\n"
            "Connection: close\r\n\r\n"
        ).encode(),
    )
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n", 1)[0]
    for form in (secret, "Ctl-secret", repr(secret), secret.encode("unicode_escape").decode()):
        assert form not in reply.decode("latin-1"), form
        assert form not in caplog.text, form
    assert "malformed" in caplog.text  # the refusal itself is logged, without the header
    # The sandbox is still serving.
    assert handle.control.requests() == []
