"""Read a desired-states file (JSON or YAML) named by a run's params, as the hostile input it is.

Whoever may trigger a DAG chooses the file name, so reading it is bounded in every way: the file
must lie inside one folder (the DAGs folder, or ``[d6] desired_states_dir``), be a regular file
(no FIFO, no device), be at most :data:`MAX_FILE_BYTES`, and parse within :data:`MAX_DEPTH`
levels of nesting without YAML anchors or aliases. Errors name the file as given, the entry
index and the field, and never echo the file's content; a name outside the folder gets the same
answer whether or not such a file exists.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.validation import MAX_ID

#: The largest desired-states file read (about 20,000 entries in the sample's flow style).
MAX_FILE_BYTES = 1024 * 1024
#: How deeply lists and mappings may nest (the format needs 3: mapping, list, entry).
MAX_DEPTH = 8
#: The most YAML events (scalars, collection starts and ends) parsed from one file.
MAX_YAML_EVENTS = 200_000
#: The Airflow option naming the folder desired-states files are read from.
DESIRED_STATES_DIR_OPTION = ("d6", "desired_states_dir")
#: The fields of one entry.
ENTRY_FIELDS = ("school_id", "api_type_id", "state")
_MAX_NAME_CHARS = 1024
_FIELD = "desired_states_path"


def desired_states_root() -> Path:
    """Return the folder desired-states files are read from.

    ``[d6] desired_states_dir`` (environment ``AIRFLOW__D6__DESIRED_STATES_DIR``) when the
    deployment sets it, else ``[core] dags_folder``.
    """
    from airflow_provider_d6._compat import conf

    configured = conf.get(*DESIRED_STATES_DIR_OPTION, fallback="") or conf.get(
        "core", "dags_folder", fallback=""
    )
    if not configured:
        raise D6InputError(
            "no folder is configured to read desired states from",
            field=_FIELD,
            allowed="set [d6] desired_states_dir or [core] dags_folder",
        )
    return Path(os.path.realpath(os.path.expanduser(configured)))


def load_desired_states(path: Any, *, root: str | Path | None = None) -> list[dict[str, Any]]:
    """Read, parse and validate a desired-states file.

    :param path: the file, relative to *root* or absolute (then it must still lie inside *root*);
        ``.json`` is parsed as JSON, anything else as YAML.
    :param root: the folder the file must lie in; :func:`desired_states_root` when omitted.
    :return: the entries as ``{"school_id": int, "api_type_id": int, "state": bool}``.
    :raises D6InputError: naming ``desired_states_path`` for the file, or the entry index and
        field (``desired_states[3].state``) for a bad entry.
    """
    folder = Path(os.path.realpath(root)) if root is not None else desired_states_root()
    name = _check_name(path)
    shown = printable(name, limit=200)
    resolved = os.path.realpath(os.path.join(folder, name))
    if os.path.commonpath([resolved, str(folder)]) != str(folder):
        # Decided on the names alone, before anything outside the folder is opened, so the
        # answer says nothing about what exists there.
        raise D6InputError(
            f"{shown} is outside the folder desired states are read from",
            field=_FIELD,
            allowed=f"a file in {folder} ([d6] desired_states_dir sets the folder)",
        )
    text = _read_text(resolved, shown)
    if resolved.lower().endswith(".json"):
        document = _parse_json(text, shown)
    else:
        document = _parse_yaml(text, shown)
    return validate_document(document, shown)


def _check_name(path: Any) -> str:
    if isinstance(path, Path):
        path = str(path)
    if not isinstance(path, str) or not path:
        raise D6InputError("a file name is required", field=_FIELD, allowed="a file name")
    if len(path) > _MAX_NAME_CHARS or printable(path, limit=None) != path:
        raise D6InputError(
            "is not a plain file name",
            field=_FIELD,
            allowed=f"at most {_MAX_NAME_CHARS} characters, no control characters",
        )
    return path


def _read_text(path: str, shown: str) -> str:
    """Read at most MAX_FILE_BYTES of a regular file without ever blocking on it."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise D6InputError(
            f"{shown} does not exist", field=_FIELD, allowed="an existing file"
        ) from None
    except OSError as error:
        raise D6InputError(
            f"{shown} cannot be opened ({printable(error.strerror or 'error')})",
            field=_FIELD,
            allowed="a readable regular file",
        ) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise D6InputError(
                f"{shown} is not a regular file", field=_FIELD, allowed="a regular file"
            )
        if info.st_size > MAX_FILE_BYTES:
            raise D6InputError(
                f"{shown} is larger than {MAX_FILE_BYTES} bytes",
                field=_FIELD,
                allowed=f"a file of at most {MAX_FILE_BYTES} bytes",
            )
        chunks: list[bytes] = []
        size = 0
        # Bounded even if the file grows while it is read.
        while size <= MAX_FILE_BYTES and (chunk := os.read(descriptor, 64 * 1024)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > MAX_FILE_BYTES:
        raise D6InputError(
            f"{shown} is larger than {MAX_FILE_BYTES} bytes",
            field=_FIELD,
            allowed=f"a file of at most {MAX_FILE_BYTES} bytes",
        )
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise D6InputError(
            f"{shown} is not UTF-8 text", field=_FIELD, allowed="a UTF-8 JSON or YAML file"
        ) from None


def _parse_json(text: str, shown: str) -> Any:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # Only the position: the decoder's message is safe but the document is not echoed.
        raise D6InputError(
            f"{shown} is not valid JSON (line {error.lineno}, column {error.colno})",
            field=_FIELD,
            allowed="a JSON list of entries",
        ) from None
    except RecursionError:
        raise _too_deep(shown) from None
    if _depth(document) > MAX_DEPTH:
        raise _too_deep(shown)
    return document


def _parse_yaml(text: str, shown: str) -> Any:
    # Only when a run reads a file: keeps importing this module cheap. PyYAML ships no types.
    import yaml  # typed as Any: pyproject.toml tells mypy PyYAML ships no types

    allowed = "a YAML list of entries (flow or block style, without anchors or aliases)"
    try:
        # First the event stream, which PyYAML produces without recursion: it bounds the
        # nesting and the size, and refuses anchors and aliases (an alias bomb expands a few
        # hundred bytes into gigabytes). Only then is the (now small and flat) document built.
        depth = 0
        for events, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader), start=1):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise D6InputError(
                    f"{shown} uses a YAML anchor or alias", field=_FIELD, allowed=allowed
                )
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(shown)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            if events > MAX_YAML_EVENTS:
                raise D6InputError(
                    f"{shown} has more than {MAX_YAML_EVENTS} YAML nodes",
                    field=_FIELD,
                    allowed=allowed,
                )
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The YAML error's text quotes the offending part of the file: only its position is kept.
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise D6InputError(
            f"{shown} is not valid YAML{where}", field=_FIELD, allowed=allowed
        ) from None


def _too_deep(shown: str) -> D6InputError:
    return D6InputError(
        f"{shown} nests deeper than {MAX_DEPTH} levels",
        field=_FIELD,
        allowed="a list of {school_id, api_type_id, state} entries",
    )


def _depth(document: Any) -> int:
    """Return how deeply *document* nests lists and mappings (iteratively: no recursion)."""
    deepest = 0
    stack = [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def validate_document(document: Any, shown: str = "the file") -> list[dict[str, Any]]:
    """Validate a parsed desired-states document: a list, or a mapping with a ``desired_states`` list.

    :param document: the parsed JSON or YAML.
    :param shown: how to name the file in errors.
    :raises D6InputError: naming the entry index and field; never quoting the file's content.
    """
    entries = document.get("desired_states") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise D6InputError(
            f"{shown} must hold a list of entries, or a mapping with a 'desired_states' list",
            field="desired_states",
            allowed="a list of {school_id, api_type_id, state} entries",
        )
    seen: dict[tuple[int, int], int] = {}
    desired = []
    for index, entry in enumerate(entries):
        checked = _validate_entry(index, entry, shown)
        pair = (checked["school_id"], checked["api_type_id"])
        if pair in seen:
            raise D6InputError(
                f"school {pair[0]} / API type {pair[1]} is already listed at "
                f"desired_states[{seen[pair]}] in {shown}",
                field=f"desired_states[{index}]",
                allowed="each school and API type once",
            )
        seen[pair] = index
        desired.append(checked)
    return desired


def _validate_entry(index: int, entry: Any, shown: str) -> dict[str, Any]:
    """Return one entry as ``{"school_id", "api_type_id", "state"}``, or raise naming the field."""
    where = f"desired_states[{index}]"
    fields = ", ".join(ENTRY_FIELDS)
    if not isinstance(entry, dict):
        raise D6InputError(
            f"{where} in {shown} is a {_kind(entry)}, not a mapping", field=where, allowed=fields
        )
    if any(key not in ENTRY_FIELDS for key in entry):
        # The unknown key itself is file content, so it is not repeated.
        raise D6InputError(
            f"{where} in {shown} has a field other than {fields}", field=where, allowed=fields
        )
    for name in ENTRY_FIELDS:
        if name not in entry:
            raise D6InputError(
                f"{where}.{name} in {shown} is missing", field=f"{where}.{name}", allowed="a value"
            )
    for name in ("school_id", "api_type_id"):
        value = entry[name]
        # bool is an int subclass: `school_id: yes` must not become school 1.
        if type(value) is not int or not 1 <= value <= MAX_ID:
            raise D6InputError(
                f"{where}.{name} in {shown} is not an id (a {_kind(value)})",
                field=f"{where}.{name}",
                allowed=f"an integer 1..{MAX_ID}",
            )
    if not isinstance(entry["state"], bool):
        raise D6InputError(
            f"{where}.state in {shown} is not true or false (a {_kind(entry['state'])})",
            field=f"{where}.state",
            allowed="true (activate) or false (deactivate)",
        )
    return {name: entry[name] for name in ENTRY_FIELDS}


def _kind(value: Any) -> str:
    """Describe a value by its type only, for messages that must not quote the file."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer out of range" if value >= 1 else "integer below 1"
    return {str: "string", float: "number", list: "list", dict: "mapping", type(None): "null"}.get(
        type(value), type(value).__name__
    )


__all__ = [
    "DESIRED_STATES_DIR_OPTION",
    "ENTRY_FIELDS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "desired_states_root",
    "load_desired_states",
    "validate_document",
]
