"""Remove the d6 credentials from text that came from d6 before it reaches an error, log or XCom.

A server (or a proxy, or a firewall) may reflect the request headers in its answer, and the
hooks copy parts of answers into exception text, which operators put into XCom and task logs
where Airflow's secrets masker does not reach. Every credential a hook reads is registered here
when its connection is read; ``redact`` then replaces it in any of the forms an answer could
carry it in: raw, ``repr``-escaped (str and bytes), JSON-escaped, URL-encoded, HTML-escaped, and
those forms nested once (a JSON message quoting a Python repr, say).
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

REPLACEMENT = "***"
# One worker process may read several connections; the newest few hundred are remembered.
_MAX_SECRETS = 256
_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None


def _repr_str(text: str) -> str:
    return repr(text)[1:-1]


def _repr_bytes(text: str) -> str:
    return repr(text.encode("utf-8", "backslashreplace"))[2:-1]


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


def _json_unicode(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _url_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(text, safe=""))


_ENCODINGS: tuple[Callable[[str], str], ...] = (
    _repr_str,
    _repr_bytes,
    _json,
    _json_unicode,
    lambda text: quote(text, safe=""),
    quote_plus,
    _url_lower,
    lambda text: html.escape(text, quote=True),
)


def variants(secret: str) -> set[str]:
    """Return the forms *secret* may take in a server's answer (one and two encodings deep)."""
    once = {secret} | {encode(secret) for encode in _ENCODINGS}
    twice = {encode(form) for form in once for encode in _ENCODINGS}
    return {form for form in once | twice if form}


def register(*secrets: str | None) -> None:
    """Remember credentials so that ``redact`` removes them from now on (in this process)."""
    global _pattern
    with _lock:
        changed = False
        for secret in secrets:
            if not secret or secret in _secrets:
                continue
            _secrets[secret] = None
            changed = True
            while len(_secrets) > _MAX_SECRETS:
                _secrets.popitem(last=False)
        if changed:
            forms = {form for secret in _secrets for form in variants(secret)}
            # Longest first, so that an encoded form is replaced whole, not only its raw core.
            ordered = sorted(forms, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(form) for form in ordered))


def redact(text: str) -> str:
    """Return *text* with every registered credential, in any known form, replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not isinstance(text, str) or not text:
        return text
    return pattern.sub(REPLACEMENT, text)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Return a copy of a JSON value (d6's parsed body) with credentials redacted in its strings."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if _depth > 64:  # a parsed body nested deeper than this is not d6's; drop the rest
        return REPLACEMENT
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, _depth + 1) for v in value]
    return value
