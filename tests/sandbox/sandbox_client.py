"""A bare d6 client for the sandbox's own tests: raw requests, no provider code in the way."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from d6_sandbox.testing import SandboxHandle

FIN = "/v2/finplus/debtmanagement"
NOTES = f"{FIN}/debtornotes/notes"
PROMISES = f"{FIN}/debtornotes/promisetopays"
CLIENT_INTEGRATIONS = "/v2/settings/clientintegrations"


class D6Client:
    """Send d6 requests with the sandbox's credentials and inspect the raw replies."""

    def __init__(self, handle: SandboxHandle) -> None:
        self.handle = handle
        self.control = handle.control
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = handle.ca_path or True
        self.auth = {"HTTP-X-USERNAME": handle.username, "HTTP-X-PASSWORD": handle.password}

    def call(
        self,
        method: str,
        path: str,
        *,
        school_id: int | str | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        sent = dict(self.auth) if auth else {}
        if school_id is not None:
            sent["HTTP-X-SCHOOLID"] = str(school_id)
        sent.update(headers or {})
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.handle.base_url + path, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def walk(
        self, path: str, *, school_id: int | None = None, params: dict[str, Any] | None = None
    ) -> list[dict]:
        """Follow ``next_cursor`` to the end; return every record, asserting the envelope."""
        records: list[dict] = []
        query = dict(params or {})
        for _ in range(10_000):
            reply = self.get(path, school_id=school_id, params=query)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert set(body) == {"data", "meta"}
            records.extend(body["data"])
            if "next_cursor" not in body["meta"]:
                return records
            query["cursor"] = body["meta"]["next_cursor"]
        raise AssertionError("pagination never ended")


def decode_cursor(cursor: str) -> dict:
    """Decode a sandbox cursor (base64 JSON) for assertions about its shape."""
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def pairs(control, activated: bool | None = None) -> list[dict]:
    """Return the seeded client integrations, optionally only activated (True) or not (False)."""
    records = control.data("client_integrations")
    if activated is None:
        return records
    flag = "Yes" if activated else "No"
    return [r for r in records if r["activated_by_integrator"] == flag]


def finance_school(control) -> int:
    """Return a school that Finance+ answers for (one activated integration at least)."""
    return pairs(control, activated=True)[0]["school_id"]


def authorised_only_school(control) -> int:
    """Return a school that authorised us but has no activated integration."""
    active = {r["school_id"] for r in pairs(control, activated=True)}
    return next(
        r["school_id"] for r in pairs(control, activated=False) if r["school_id"] not in active
    )


def unlisted_school(control) -> int:
    """Return a school that has authorised nothing."""
    listed = {r["school_id"] for r in pairs(control)}
    return next(s["school_id"] for s in control.data("schools") if s["school_id"] not in listed)
