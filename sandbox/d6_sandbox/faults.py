"""Injected faults: the failures integrators meet on the live service and its network path."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from d6_sandbox.protocol import V2, D6Failure, rate_limited, route_not_found

# Faults answered without processing the request.
IMMEDIATE = ("500", "502", "503", "429", "html403", "empty200", "route_not_found", "drop_before")
# Faults that process the request (a write takes effect) and then spoil or delay the reply;
# "slow_after" holds the finished answer for slow_seconds (the write is done, the client waits).
AFTER = ("drop", "truncated", "slow_after")
DELAYS = ("latency", "slow")
KINDS = IMMEDIATE + AFTER + DELAYS

FIREWALL_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>"
    "<h1>Access Denied</h1><p>Your request was blocked by the web application firewall.</p>"
    "<p>Reference: #18.2f7a3c17.1732800000.5e1d</p></body></html>\n"
)
BAD_GATEWAY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>\n"
)


@dataclass
class ScriptedFault:
    """Apply *kind* to the next *times* requests matching *method* and the *path* prefix."""

    kind: str
    times: int = 1
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Say whether this entry applies to a request."""
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass
class FaultPlan:
    """What to inject: a script consumed first, then random faults at ``rate`` over ``kinds``."""

    rate: float = 0.0
    kinds: list[str] = field(default_factory=lambda: ["500", "502", "503", "429"])
    script: list[ScriptedFault] = field(default_factory=list)
    retry_after: str = "1"
    slow_seconds: float = 5.0
    latency_ms: float = 300.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_json(cls, body: dict[str, Any], seed: int = 0) -> FaultPlan:
        """Build a plan from the control API's JSON; raise ValueError naming a bad field."""
        rate = float(body.get("rate") or 0.0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        kinds = list(body.get("kinds") or ["500", "502", "503", "429"])
        script = [ScriptedFault(**entry) for entry in body.get("script") or []]
        for kind in kinds + [s.kind for s in script]:
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        for entry in script:
            if entry.times < 1:
                raise ValueError("script entries need times >= 1")
        return cls(
            rate=rate,
            kinds=kinds,
            script=script,
            retry_after=str(body.get("retry_after", "1")),
            slow_seconds=float(body.get("slow_seconds", 5.0)),
            latency_ms=float(body.get("latency_ms", 300.0)),
            rng=random.Random(seed),
        )

    def to_json(self) -> dict[str, Any]:
        """Describe the plan for ``GET /_sandbox/faults``."""
        return {
            "rate": self.rate,
            "kinds": self.kinds,
            "retry_after": self.retry_after,
            "slow_seconds": self.slow_seconds,
            "latency_ms": self.latency_ms,
            "script": [vars(s).copy() for s in self.script],
        }

    def choose(self, method: str, path: str) -> str | None:
        """Return the fault kind for this request, consuming a scripted entry first."""
        for entry in self.script:
            if entry.matches(method, path):
                entry.times -= 1
                if entry.times <= 0:
                    self.script.remove(entry)
                return entry.kind
        if self.rate > 0 and self.kinds and self.rng.random() < self.rate:
            return self.rng.choice(self.kinds)
        return None

    def immediate_response(self, kind: str, version: str = V2) -> web.Response:
        """Build the reply of a fault that answers without processing the request.

        d6's own errors (500, 503, 429) take the error shape of the route's API *version*.
        """
        if kind == "500":
            return D6Failure(500, "Server Error").render(version)
        if kind == "502":
            return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
        if kind == "503":
            return D6Failure(
                503, "Service Unavailable", headers={"Retry-After": self.retry_after}
            ).render(version)
        if kind == "429":
            return rate_limited(self.retry_after).render(version)
        if kind == "html403":
            return web.Response(status=403, text=FIREWALL_PAGE, content_type="text/html")
        if kind == "empty200":
            return web.Response(status=200, body=b"", content_type="text/html")
        if kind == "route_not_found":
            return route_not_found()
        raise ValueError(kind)


def truncate(response: web.Response) -> web.Response:
    """Cut a JSON reply short (200, consistent Content-Length, body no longer parses)."""
    body = response.body if isinstance(response.body, bytes) else b""
    cut = body[: max(1, len(body) // 2)] if len(body) > 1 else b"{"
    return web.Response(status=200, body=cut, content_type=response.content_type)
