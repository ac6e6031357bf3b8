"""Make text that came from d6 (or from a file or form) safe to put in a log line or message.

A school name, an API type or a d6 error message is attacker-controlled: a newline in it would
start a forged log line ("[info] Outcome: 0 failed"), an ANSI escape would recolour or erase the
terminal showing the log, a bidi override would reorder what a reader sees. :func:`printable`
escapes every such character the way Python writes it in a string literal, so the text stays
readable (accented names and other scripts are kept) and can never span or rewrite a line.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls (ESC, CR, LF, TAB, NUL, NEL ...), DEL, the Unicode line and paragraph
# separators, bidi embedding/override/isolate controls, BOM, and lone surrogates (which cannot be
# encoded, so a log handler writing UTF-8 would fail on them).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
_DEFAULT_LIMIT = 500


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, *, limit: int | None = _DEFAULT_LIMIT) -> str:
    """Return *value* as one line of text with control characters escaped.

    :param value: anything; non-strings are converted with ``str()`` first.
    :param limit: the most characters kept (an ellipsis marks a cut); ``None`` keeps all.
    """
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}…"
    # A backslash is escaped too, so "\x1b" typed by d6 and a real ESC read differently.
    return _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))


__all__ = ["printable"]
