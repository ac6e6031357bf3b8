"""Convert operator arguments rendered from templates into the types the hook expects.

Jinja renders every templated argument as a string unless the DAG sets
``render_template_as_native_obj``, so ``school_id="{{ params.school_id }}"`` reaches ``execute`` as
``"1000"`` and ``state="{{ params.activate }}"`` as ``"True"``. These helpers accept the native
value and its string form, and reject everything else with a :class:`D6InputError` naming the
field and what would have been accepted, before any request is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_d6.exceptions import D6InputError

# What Jinja renders for a missing optional value: ``{{ None }}`` is "None", an unset variable "".
_EMPTY_STRINGS = frozenset({"", "none"})
_TRUE_STRINGS = frozenset({"true", "1", "yes"})
_FALSE_STRINGS = frozenset({"false", "0", "no"})


def as_int(
    value: Any, field: str, *, minimum: int | None = 1, optional: bool = False
) -> int | None:
    """Return *value* as an int, accepting an int or its decimal string form.

    :param value: the rendered argument.
    :param field: the argument's name, used in the error.
    :param minimum: the smallest accepted value (``None``: no lower bound).
    :param optional: accept ``None`` (and the strings Jinja renders for it) and return ``None``.
    :raises D6InputError: when *value* is not an integer of at least *minimum*.
    """
    allowed = "an integer" if minimum is None else f"an integer >= {minimum}"
    if optional:
        allowed = f"{allowed} or None"
    if value is None or (isinstance(value, str) and value.strip().lower() in _EMPTY_STRINGS):
        if optional:
            return None
        raise D6InputError("a value is required", field=field, allowed=allowed)
    # bool is an int subclass: True must not silently become school 1.
    if isinstance(value, bool):
        raise D6InputError(f"got a boolean ({value!r})", field=field, allowed=allowed)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _is_decimal_integer(value.strip()):
        number = int(value.strip())
    else:
        raise D6InputError(f"{_show(value)} is not an integer", field=field, allowed=allowed)
    if minimum is not None and number < minimum:
        raise D6InputError(f"{number} is too small", field=field, allowed=allowed)
    return number


def as_bool(value: Any, field: str, *, optional: bool = False) -> bool | None:
    """Return *value* as a bool, accepting a bool, 0/1 or their string forms.

    :param value: the rendered argument.
    :param field: the argument's name, used in the error.
    :param optional: accept ``None`` (and the strings Jinja renders for it) and return ``None``.
    :raises D6InputError: when *value* is not one of the accepted forms.
    """
    allowed = "true, false, 1, 0, yes or no"
    if optional:
        allowed = f"{allowed} or None"
    if value is None or (isinstance(value, str) and value.strip().lower() in _EMPTY_STRINGS):
        if optional:
            return None
        raise D6InputError("a value is required", field=field, allowed=allowed)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
    raise D6InputError(f"{_show(value)} is not a boolean", field=field, allowed=allowed)


def as_choice(value: Any, field: str, choices: Iterable[str]) -> str:
    """Return *value* when it is one of *choices* (case and surrounding spaces ignored).

    :param value: the rendered argument.
    :param field: the argument's name, used in the error.
    :param choices: the accepted values, returned in their canonical spelling.
    :raises D6InputError: when *value* is not one of *choices*.
    """
    options = list(choices)
    allowed = ", ".join(options)
    if isinstance(value, str):
        wanted = value.strip().lower()
        for option in options:
            if option.lower() == wanted:
                return option
    raise D6InputError(f"{_show(value)} is not accepted", field=field, allowed=allowed)


def _is_decimal_integer(text: str) -> bool:
    """Return whether *text* is an optionally signed run of ASCII digits."""
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit()


def _show(value: Any) -> str:
    """Return a short representation of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


__all__ = ["as_bool", "as_choice", "as_int"]
