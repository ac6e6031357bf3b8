"""Turn a d6 answer (status, headers, body bytes) into data or a typed error.

Shared by the sync and async hooks. Whatever bytes and status arrive, the only exceptions that
leave this module are ``D6Error`` subclasses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_d6.exceptions import (
    D6AuthenticationError,
    D6Error,
    D6ForbiddenError,
    D6NotActivatedError,
    D6NotAuthorisedError,
    D6NotFoundError,
    D6RateLimitError,
    D6ResponseError,
    D6ServerError,
    D6ValidationError,
)
from airflow_provider_d6.hooks._redact import redact
from airflow_provider_d6.hooks._retry import parse_retry_after

_SNIPPET = 120


def parse_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    *,
    method: str,
    url: str,
    allow_empty: bool = False,
) -> Any:
    """Return the JSON payload of a successful answer or raise the matching ``D6Error``.

    :param status: the HTTP status code
    :param headers: the response headers (case-insensitive mapping)
    :param body: the raw response body
    :param method: the request method, for the error text
    :param url: the request URL without query string, for the error text
    :param allow_empty: accept an empty 2xx body (returned as None), e.g. a 204 to a PATCH
    """
    try:
        return _parse(status, headers, body or b"", method, url, allow_empty)
    except D6Error:
        raise
    except Exception as exc:  # noqa: BLE001 - a parser must not leak a KeyError, RecursionError, ... to callers
        raise D6ResponseError(
            f"could not interpret d6's answer ({type(exc).__name__})",
            status_code=status,
            method=method,
            url=url,
        ) from None


def _load(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False, None


def _looks_like_html(headers: Mapping[str, str] | None, body: bytes) -> bool:
    content_type = (headers.get("Content-Type") if headers else None) or ""
    if "html" in content_type.lower():
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _snippet(body: bytes) -> str:
    # Redact before cutting and collapsing whitespace: a cut or collapsed credential would no
    # longer match, and a reflected prefix of the password is a leak too.
    text = " ".join(redact(body[: _SNIPPET * 32].decode("utf-8", "replace")).split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET or len(body) > _SNIPPET * 32 else "")


def _parse(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes,
    method: str,
    url: str,
    allow_empty: bool,
) -> Any:
    common: dict[str, Any] = {"status_code": status, "method": method, "url": url}
    if 200 <= status < 300:
        if not body.strip():
            if allow_empty or status == 204:
                return None
            # d6 answered 200 with an empty string to unversioned paths: never read that as "no data".
            raise D6ResponseError(
                "d6 answered with an empty body where JSON was expected", **common
            )
        ok, payload = _load(body)
        if not ok:
            if _looks_like_html(headers, body):
                raise D6ResponseError(
                    "d6 answered with an HTML page where JSON was expected (a proxy or firewall page?)",
                    **common,
                )
            raise D6ResponseError(
                f"d6 answered with a body that is not valid JSON (truncated?): {_snippet(body)!r}",
                **common,
            )
        return payload

    ok, payload = _load(body) if body.strip() else (False, None)
    if not ok and status == 403:
        raise D6ForbiddenError(
            "the answer is an HTML page, not d6's JSON: d6's web application firewall probably blocked "
            "this machine's egress IP address; ask d6 support to allow it or run from another network",
            from_firewall=True,
            **common,
        )
    message, validation_errors = _describe(payload, body if not ok else b"", status)
    common["body"] = payload if ok else None
    if validation_errors:
        common["validation_errors"] = validation_errors
    _raise_v1_gate(payload, message, common)
    if status == 400:
        raise D6ValidationError(message, **common)
    if status == 401:
        # Both refusals are 401; only the message tells "the school has not authorised us" apart.
        lowered = message.lower()
        if "not authorised" in lowered or "not authorized" in lowered:
            raise D6NotAuthorisedError(message, **common)
        raise D6AuthenticationError(message, **common)
    if status == 403:
        raise D6ForbiddenError(message, **common)
    if status == 404:
        route = isinstance(payload, dict) and payload.get("error") == "route_not_found"
        raise D6NotFoundError(message, route_not_found=route, **common)
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        raise D6RateLimitError(message, retry_after=retry_after, **common)
    if status >= 500:
        raise D6ServerError(message, **common)
    if 300 <= status < 400:
        # Redirects are not followed: the credential headers must not travel to another host.
        raise D6ResponseError(f"unexpected redirect ({message})", **common)
    raise D6Error(message, **common)


_MODULES = {"admin+": 8, "curriculum+": 9}


def _raise_v1_gate(payload: Any, message: str, common: dict[str, Any]) -> None:
    """Raise for v1's module and school gates, whatever their HTTP status ([gap] in the docs).

    ``{"error": "Integration not activated", "error_description": "Please activate the Admin+
    API ..."}`` and ``{"error": "Unauthorized", "error_description": "Client access not
    authorised"}`` are told apart by their text, not their status.
    """
    if not isinstance(payload, dict):
        return
    error = str(payload.get("error") or "").strip().lower()
    if error == "integration not activated":
        lowered = message.lower()
        api_type_id = next((t for name, t in _MODULES.items() if name in lowered), None)
        module = {8: "Admin+ API", 9: "Curriculum+ API"}.get(api_type_id)  # type: ignore[arg-type]
        raise D6NotActivatedError(message, module=module, api_type_id=api_type_id, **common)
    if "client access not authorised" in message.lower():
        raise D6NotAuthorisedError(message, **common)


def _describe(payload: Any, raw: bytes, status: int) -> tuple[str, dict[str, Any]]:
    """Return d6's message and validation errors from a v2 or v1 error body."""
    validation_errors: dict[str, Any] = {}
    if isinstance(payload, dict):
        errors = payload.get("validation_errors")
        if isinstance(errors, dict):
            validation_errors = {str(k): v for k, v in errors.items()}
        # v2: {"success": false, "message": ...}; v1: {"error": ..., "error_description": ...}
        for key in ("message", "error_description", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip(), validation_errors
        return f"HTTP {status} from d6", validation_errors
    if isinstance(payload, str) and payload.strip():
        return redact(payload.strip())[:_SNIPPET], validation_errors
    if raw.strip():
        return f"non-JSON answer: {_snippet(raw)!r}", validation_errors
    return "empty answer", validation_errors


def already_in_state(err: D6ValidationError) -> bool:
    """Return whether d6's 400 to Change Client Integration State means "already in that state".

    d6 answers "Integration already activated" (or deactivated) with a 400 and the record; only
    its message tells that apart from a real validation error.
    """
    return "already" in err.message.lower()


def envelope(payload: Any, *, method: str, url: str) -> tuple[list[Any], dict[str, Any]]:
    """Return ``(records, meta)`` from a collection answer (v2 envelope or a v1 bare array)."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        records, meta = payload["data"], payload.get("meta")
        meta = meta if isinstance(meta, dict) else {}
    elif isinstance(payload, list):
        records, meta = payload, {}
    else:
        raise D6ResponseError(
            "expected a collection ({data: [...], meta: {...}}) from d6", method=method, url=url
        )
    for record in records:
        if record.__class__ is not dict:
            raise D6ResponseError(
                f"expected every record to be a JSON object, got {type(record).__name__}",
                method=method,
                url=url,
            )
    return records, meta


def single(payload: Any, *, method: str, url: str) -> dict[str, Any]:
    """Return one record from a resource answer (a bare object, or wrapped in ``data``)."""
    if isinstance(payload, dict):
        data = payload.get("data")
        return data if isinstance(data, dict) else payload
    raise D6ResponseError("expected one record (a JSON object) from d6", method=method, url=url)
