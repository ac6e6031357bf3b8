"""Stream one d6 collection into a file on any Airflow object storage (``file://``, ``s3://``, …).

Records are written as the hook's pages arrive, so memory stays flat however large the school.
The file is written to a temporary sibling and moved into place only after the last page: a
reader of ``path`` sees the previous good file or the new complete one, never a partial export.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_d6._compat import (
    Asset,
    AssetAlias,
    BaseOperator,
    ObjectStoragePath,
    conf,
    literal,
)
from airflow_provider_d6._text import printable
from airflow_provider_d6.exceptions import D6InputError
from airflow_provider_d6.hooks._endpoints import ENDPOINTS, RESOURCE_FIELDS
from airflow_provider_d6.operators.privacy import (
    UNKNOWN_FIELD_POLICIES,
    RecordPrivacy,
    check_field_names,
    read_pseudonym_key,
)
from airflow_provider_d6.validation import check_bool, check_choice, check_id

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_d6.hooks.d6 import D6Hook

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv")
# The resources read without a school header (a school_id is then a filter or a record id).
SCHOOL_OPTIONAL_RESOURCES = frozenset(n for n, e in ENDPOINTS.items() if not e.school_scoped)
# The CSV column that keeps fields d6 sent but RESOURCE_FIELDS does not document, as JSON text,
# so that the header never depends on the data and nothing is silently dropped.
EXTRA_COLUMN = "extra"
_LOCAL_PROTOCOLS = frozenset({"file", "local"})
#: The URL schemes a storage root chosen at run time (a trigger-form param) may use.
STORAGE_ROOT_SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss", "az")
#: The Airflow option a deployment sets to confine run-time storage roots (comma-separated roots).
STORAGE_ROOTS_OPTION = ("d6", "export_storage_roots")
# One path segment of a storage root: letters, digits and a few punctuation marks, nothing Jinja,
# a shell, a URL parser or fsspec gives a meaning to ({ } % # ? * [ ] \ spaces, controls, ...).
# A leading dot is plain (".airflow"); "." and ".." are refused on their own.
_ROOT_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9._~@+=,-]*", re.ASCII)
# What airflow.sdk.literal() wraps a value in (the class itself is not public).
_LITERAL = type(literal(None))
# Characters json.dumps(ensure_ascii=False) leaves raw that break a JSON Lines file: NEL and the
# Unicode line/paragraph separators (str.splitlines() splits records on them) and lone surrogates
# (not encodable as UTF-8). They only ever occur inside JSON strings, so escaping them is exact.
_JSONL_ESCAPE = re.compile("[\x85\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# What a spreadsheet takes as the start of a formula (CSV injection), and the cells that start so
# but are plain numbers, which are left alone so that "-150.00" stays a number.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)
_WRITE_BUFFER_BYTES = 64 * 1024
# What separates the target's name from the uuid in the name of its temporary sibling.
_TEMPORARY_INFIX = ".tmp-"
_READ_CHUNK_BYTES = 1024 * 1024


class D6ToStorageOperator(BaseOperator):
    """Export one d6 collection for one school to a JSON Lines or CSV file, atomically.

    The written file is declared as an :class:`~airflow.sdk.Asset` outlet. ``path`` is templated,
    so the outlet is chosen when the DAG is parsed: the ``asset`` argument when given; otherwise
    ``Asset(uri=path)`` when ``path`` holds no Jinja; otherwise an ``AssetAlias`` named after the
    un-rendered ``path`` (``d6-export:<task_id>`` when ``path`` comes from an XCom), to which the
    rendered file is attached as an Asset at run time: schedule downstream DAGs on that alias, or
    pass ``asset`` to choose a stable name.

    Airflow renders every templated argument, including the values ``expand_kwargs`` takes from
    an XCom. A value built from a trigger-form param or a d6 answer must therefore reach this
    operator as ``airflow.sdk.literal(value)`` (or, for an id, as an ``int``), never as a string
    Jinja would evaluate; see the ``d6_finance_export`` example DAG.

    CSV cells a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return that is not a plain number such as ``-150.00``) are written with a
    leading ``'`` so that a school's clerk opening the file sees text, not a formula
    (``neutralise_formulas=False`` writes them verbatim). JSON Lines is never changed: strings
    round-trip exactly (see :func:`write_atomically`).

    :param resource: the d6 collection: one of ``RESOURCE_FIELDS`` (``learners``, ``notes``, …).
    :param path: where to write: an ``ObjectStoragePath`` or a URI (``file:///…``, ``s3://…``);
        a plain absolute local path is taken as ``file://``.
    :param school_id: the school to export; required except for ``schools`` and
        ``client_integrations`` (where it filters).
    :param filters: query filters of the collection (validated by the hook).
    :param format: ``"jsonl"`` (one compact JSON object per line) or ``"csv"`` (header = the
        documented fields of the resource, then ``extra``; nested values as JSON text).
    :param skip_if_unchanged: leave an existing file (and its modification time) untouched when
        the new export has the same sha256; the result then says ``"skipped": True``.
    :param asset: the outlet to declare instead of the one derived from ``path``: an ``Asset``,
        an ``AssetAlias`` or a URI string.
    :param drop_fields: fields removed from every record, embedded records included (and from
        the CSV header); see :mod:`airflow_provider_d6.operators.privacy`.
    :param pseudonymise: fields whose values are replaced by a keyed pseudonym (HMAC-SHA256,
        stable across runs so joins still work), e.g. ``D6_SENSITIVE_FIELDS``.
    :param pseudonym_key_conn_id: the Airflow connection whose password is the pseudonym key;
        required with ``pseudonymise``.
    :param unknown_fields: ``"refuse"`` (default) or ``"warn"`` for names in ``drop_fields`` or
        ``pseudonymise`` that no d6 record is known to carry.
    :param neutralise_formulas: in CSV, prefix formula-like cells with ``'`` (default ``True``).
    :param d6_conn_id: the d6 connection.
    """

    template_fields: Sequence[str] = ("path", "school_id", "filters", "resource")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        resource: str,
        path: str | ObjectStoragePath,
        school_id: int | str | None = None,
        filters: Mapping[str, Any] | None = None,
        format: str = "jsonl",
        skip_if_unchanged: bool = False,
        asset: Asset | AssetAlias | str | None = None,
        drop_fields: Sequence[str] | None = None,
        pseudonymise: Sequence[str] | None = None,
        pseudonym_key_conn_id: str | None = None,
        unknown_fields: str = "refuse",
        neutralise_formulas: bool = True,
        d6_conn_id: str = "d6_default",
        **kwargs: Any,
    ) -> None:
        self.neutralise_formulas = check_bool(neutralise_formulas, "neutralise_formulas")
        self.format = check_choice(format, "format", FORMATS)
        self.unknown_fields = check_choice(unknown_fields, "unknown_fields", UNKNOWN_FIELD_POLICIES)
        # Not template fields: what is hidden must not depend on a trigger form or an XCom.
        self.drop_fields, unknown_drop = check_field_names(
            drop_fields, "drop_fields", unknown_fields=self.unknown_fields
        )
        self.pseudonymise, unknown_pseudo = check_field_names(
            pseudonymise, "pseudonymise", unknown_fields=self.unknown_fields
        )
        self.pseudonym_key_conn_id = _privacy_key_conn(
            self.drop_fields, self.pseudonymise, pseudonym_key_conn_id
        )
        if not _is_templated(resource):
            check_choice(resource, "resource", RESOURCE_FIELDS)
        if _is_static_path(_unwrap(path)):
            _storage_uri(_unwrap(path))
        if "outlets" not in kwargs:
            kwargs["outlets"] = [_outlet_for(asset, _unwrap(path), kwargs.get("task_id"))]
        super().__init__(**kwargs)
        self.resource = resource
        self.path = path
        self.school_id = school_id
        self.filters = filters
        self.skip_if_unchanged = bool(skip_if_unchanged)
        self.d6_conn_id = d6_conn_id
        for name in (*unknown_drop, *unknown_pseudo):
            self.log.warning("No d6 record is known to have a field %r; applying it anyway", name)

    @cached_property
    def hook(self) -> D6Hook:
        """Return the d6 hook (built on first use, never in ``__init__``)."""
        # Imported here, not at module level: the hook pulls in requests and aiohttp
        # (through HttpHook), which would slow every DAG file that imports this module.
        from airflow_provider_d6.hooks.d6 import D6Hook

        return D6Hook(d6_conn_id=self.d6_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Export the collection and return the path, counts and sha256 for XCom."""
        # Unwrapped for a direct execute() call; a task run has already resolved the literals.
        resource = check_choice(_unwrap(self.resource), "resource", RESOURCE_FIELDS)
        school_id = check_id(
            _unwrap(self.school_id), "school_id", optional=resource in SCHOOL_OPTIONAL_RESOURCES
        )
        filters = _as_filters(_unwrap(self.filters))
        target = _to_storage_path(_unwrap(self.path))
        # The key is read before the first d6 request, so a missing one costs no d6 call.
        privacy = RecordPrivacy(
            drop_fields=self.drop_fields,
            pseudonymise=self.pseudonymise,
            key=read_pseudonym_key(self.pseudonym_key_conn_id) if self.pseudonymise else None,
        )

        records = self.hook.iter_resource(resource, school_id, **filters)
        if privacy.active:
            records = privacy.iter_apply(records)
        outcome = write_atomically(
            target,
            records,
            format=self.format,
            fields=[f for f in RESOURCE_FIELDS[resource] if f not in self.drop_fields],
            skip_if_unchanged=self.skip_if_unchanged,
            neutralise_formulas=self.neutralise_formulas,
        )
        result = {
            "path": str(target),
            "resource": resource,
            "school_id": school_id,
            "format": self.format,
            **outcome,
        }
        if privacy.active:
            result["dropped_fields"] = list(self.drop_fields)
            result["pseudonymised_fields"] = list(self.pseudonymise)
        self.log.info(
            "%s %s: %d records, %d bytes, sha256 %s -> %s",
            "Unchanged, kept" if result["skipped"] else "Wrote",
            resource,
            result["records"],
            result["bytes"],
            result["sha256"],
            printable(result["path"]),
        )
        self._record_outlet_events(context, result)
        self._export_result = result
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Tell OpenLineage the d6 collection read and the file written (see ``_lineage``)."""
        from airflow_provider_d6.operators._lineage import export_lineage

        result = getattr(self, "_export_result", None)
        if result is None:  # nothing was exported by this operator object
            return None
        return export_lineage(
            base_url=self.hook.base_url,
            resource=result["resource"],
            school_id=result["school_id"],
            result=result,
            path=_asset_uri(result["path"]),
            file_format=result["format"],
        )

    def _record_outlet_events(self, context: Context, result: dict[str, Any]) -> None:
        """Attach the export's summary to the Asset events (and the file to any alias)."""
        outlet_events = context.get("outlet_events") if context else None
        if outlet_events is None:  # execute() called directly, outside a task run
            return
        extra = {k: result[k] for k in ("path", "records", "bytes", "sha256", "skipped")}
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                written = Asset(uri=_asset_uri(str(result["path"])))
                outlet_events[outlet].add(written, extra=extra)
            elif isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(extra)


def write_atomically(
    target: ObjectStoragePath,
    records: Iterable[Mapping[str, Any]],
    *,
    format: str,
    fields: Sequence[str],
    skip_if_unchanged: bool = False,
    neutralise_formulas: bool = True,
) -> dict[str, Any]:
    """Write *records* to *target* through a temporary sibling and move it into place.

    JSON Lines round-trips every string exactly: NEL, U+2028, U+2029 and lone surrogates are
    written as ``\\uXXXX`` escapes, so each record stays on one line (also for
    ``str.splitlines()``) and the file is valid UTF-8. CSV is UTF-8 too: a lone surrogate, which no
    UTF-8 file can hold, is replaced by U+FFFD (with a warning); every other string round-trips.

    :param target: the final file.
    :param records: the records, consumed one by one (never held in memory together).
    :param format: ``"jsonl"`` or ``"csv"``.
    :param fields: the documented fields, the CSV header before the ``extra`` column.
    :param skip_if_unchanged: keep an existing *target* with the same sha256 untouched.
    :param neutralise_formulas: in CSV, prefix with ``'`` every cell a spreadsheet would run as a
        formula (see :class:`D6ToStorageOperator`).
    :return: ``records``, ``bytes``, ``sha256`` and ``skipped``.
    """
    local = target.protocol in _LOCAL_PROTOCOLS
    if local:
        os.makedirs(os.path.dirname(target.path) or "/", exist_ok=True)
    # Same directory (or bucket prefix) so the final move is a rename, not a cross-store copy;
    # the uuid keeps concurrent or leftover attempts apart and out of "*.jsonl" globs.
    temporary = target.with_name(f"{target.name}{_TEMPORARY_INFIX}{uuid.uuid4().hex}")
    fs = target.fs
    started = time.time()
    try:
        # fs.open rather than ObjectStoragePath.open: the latter reports lineage on every write()
        # call, and would report the temporary file.
        with fs.open(temporary.path, "wb") as stream:
            sink = _HashingSink(stream)
            if format == "csv":
                count = _write_csv(sink, records, fields, neutralise_formulas)
            else:
                count = _write_jsonl(sink, records)
            sink.flush()
            if local:
                stream.flush()
                os.fsync(stream.fileno())
        if sink.replaced:
            log.warning(
                "%d lone surrogate(s) in the records could not be written to CSV and were "
                "replaced by U+FFFD; JSON Lines keeps them exactly.",
                sink.replaced,
            )
        digest = sink.sha256.hexdigest()
        if skip_if_unchanged and _same_content(fs, target.path, sink.bytes, digest):
            _remove_quietly(fs, temporary.path)
            return {"records": count, "bytes": sink.bytes, "sha256": digest, "skipped": True}
        if local:
            os.replace(temporary.path, target.path)
        else:
            fs.mv(temporary.path, target.path)
    except BaseException:
        _remove_quietly(fs, temporary.path)
        raise
    _remove_leftovers(fs, target, started)
    return {"records": count, "bytes": sink.bytes, "sha256": digest, "skipped": False}


class _HashingSink:
    """A text sink that encodes to UTF-8, hashes and counts bytes, and buffers writes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.replaced = 0

    def write(self, text: str) -> int:
        if _SURROGATE.search(text):
            # Only CSV gets here (JSON Lines escapes them): a lone surrogate is not a character
            # and no UTF-8 file can hold it, so it becomes U+FFFD and is counted.
            text, replaced = _SURROGATE.subn("\ufffd", text)
            self.replaced += replaced
        data = text.encode("utf-8")
        self.sha256.update(data)
        self.bytes += len(data)
        self._buffer += data
        if len(self._buffer) >= _WRITE_BUFFER_BYTES:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._stream.write(bytes(self._buffer))
            self._buffer.clear()


def _write_jsonl(sink: _HashingSink, records: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    for record in records:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        sink.write(_JSONL_ESCAPE.sub(_json_escape, line))
        sink.write("\n")
        count += 1
    return count


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _write_csv(
    sink: _HashingSink,
    records: Iterable[Mapping[str, Any]],
    fields: Sequence[str],
    neutralise_formulas: bool = True,
) -> int:
    documented = list(fields)
    known = frozenset(documented)
    writer = csv.writer(sink)
    writer.writerow([*documented, EXTRA_COLUMN])
    count = 0
    for record in records:
        extra = {key: value for key, value in record.items() if key not in known}
        row = [_csv_cell(record.get(field), neutralise_formulas) for field in documented]
        row.append(_compact_json(extra) if extra else "")
        writer.writerow(row)
        count += 1
    return count


def _csv_cell(value: Any, neutralise_formulas: bool = True) -> str:
    """Render one value as CSV text: nested values as JSON, None as an empty cell.

    With *neutralise_formulas*, text a spreadsheet would run as a formula (starting with
    ``= + - @``, a tab or CR, and not a plain number) gets a leading ``'``, which spreadsheets
    show as text and do not evaluate.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return _compact_json(value)
    text = str(value)
    if (
        neutralise_formulas
        and text.startswith(_FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(text)
    ):
        return f"'{text}"
    return text


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _same_content(fs: Any, path: str, size: int, digest: str) -> bool:
    """Return whether the file at *path* exists with this size and sha256 (read only if needed)."""
    if not fs.exists(path) or fs.size(path) != size:
        return False
    return _sha256_of(fs, path) == digest


def _sha256_of(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as stream:
        while chunk := stream.read(_READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_leftovers(fs: Any, target: ObjectStoragePath, before: float) -> None:
    """Delete the temporary files earlier attempts at *target* left behind when they were killed.

    A worker killed mid-export (SIGKILL, a lost machine) never reaches the cleanup of
    ``write_atomically``, so its ``<name>.tmp-<uuid>`` stays beside the file. Once this attempt
    has moved a complete file into place, every such sibling not written to since this attempt
    began (*before*, epoch seconds) is from an attempt that is gone: Airflow runs one try of a
    task instance at a time. A store that cannot tell a file's modification time keeps them.
    """
    pattern = re.compile(re.escape(target.name) + re.escape(_TEMPORARY_INFIX) + "[0-9a-f]{32}")
    parent = target.parent.path
    try:
        names = [str(p) for p in fs.ls(parent, detail=False)]
    except Exception:
        log.warning("Could not list %s for leftover temporary files", parent, exc_info=True)
        return
    for path in names:
        if not pattern.fullmatch(path.rstrip("/").rsplit("/", 1)[-1]):
            continue
        try:
            modified = fs.modified(path).timestamp()
        except (NotImplementedError, OSError, ValueError):  # a store without times; gone
            continue
        if modified < before:
            log.info("Removing %s, left by an earlier attempt that did not finish", path)
            _remove_quietly(fs, path)


def _remove_quietly(fs: Any, path: str) -> None:
    """Delete a temporary file; a failure here must not hide the error that got us here."""
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:
        log.warning("Could not remove the temporary export file %s", path, exc_info=True)


def _unwrap(value: Any) -> Any:
    """Return the value inside an ``airflow.sdk.literal()`` wrapper, or *value* itself."""
    return value.value if isinstance(value, _LITERAL) else value


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _to_storage_path(value: Any) -> ObjectStoragePath:
    """Return *value* as an ObjectStoragePath (a scheme-less absolute path meaning ``file://``)."""
    if isinstance(value, ObjectStoragePath) and value.protocol:
        return value
    return ObjectStoragePath(_storage_uri(value))


def _storage_uri(value: Any) -> str:
    """Check *value* as a file location and return it as a URI, without touching any storage.

    :param value: an ObjectStoragePath or a URI / absolute local path string.
    :raises D6InputError: when *value* is not a file location.
    """
    allowed = "an ObjectStoragePath, a URI such as file:///… or s3://…, or an absolute path"
    if isinstance(value, ObjectStoragePath):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise D6InputError(f"{value!r} is not a path", field="path", allowed=allowed)
    text = value.strip()
    if not urlsplit(text).scheme:
        # A worker's current directory is arbitrary, so a relative path would land anywhere.
        if not os.path.isabs(text):
            raise D6InputError(f"{text!r} is relative", field="path", allowed=allowed)
        text = f"file://{text}"
    if text.endswith("/"):
        raise D6InputError(f"{text!r} names a directory", field="path", allowed="a file path")
    return text


def _asset_uri(path: str | ObjectStoragePath) -> str:
    """Return the Asset URI of *path*: scheme and location without a storage conn id."""
    parts = urlsplit(_storage_uri(path))
    # "s3://aws_default@bucket/key": the conn id says how to reach the data, not which data.
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _outlet_for(
    asset: Asset | AssetAlias | str | None, path: Any, task_id: str | None
) -> Asset | AssetAlias:
    """Choose the outlet declared at parse time (see the class docstring)."""
    if isinstance(asset, (Asset, AssetAlias)):
        return asset
    if isinstance(asset, str) and asset.strip():
        return Asset(uri=asset.strip())
    if asset is not None:
        raise D6InputError(
            f"{asset!r} is not an asset", field="asset", allowed="an Asset, an AssetAlias or a URI"
        )
    if _is_static_path(path):
        return Asset(uri=_asset_uri(path))
    if isinstance(path, str):
        # Only the rendered path names the file; the template names the family of files.
        return AssetAlias(name=path.strip())
    # A path from an XCom (or another lazy value) is not known at all until run time.
    return AssetAlias(name=f"d6-export:{task_id}")


def check_storage_root(value: Any, field: str = "storage_root") -> str:
    """Return *value* as a storage root URI when it is a plain, allowed location.

    A storage root often comes from a trigger-form param, so it is attacker-controlled: it must
    use one of :data:`STORAGE_ROOT_SCHEMES` (or be an absolute local path), and every path
    segment must be plain (letters, digits, ``. _ ~ @ + = , -``; no ``..``, no template syntax,
    no empty segment). When the deployment sets ``[d6] export_storage_roots`` (environment:
    ``AIRFLOW__D6__EXPORT_STORAGE_ROOTS``) to a comma-separated list of roots, *value* must also
    be one of them or lie below one.

    :param value: the root, e.g. ``/srv/exports`` or ``s3://aws_default@bucket/d6``.
    :param field: the name used in errors.
    :raises D6InputError: naming *field* and what is allowed; the rejected value is not echoed
        beyond a short, escaped excerpt.
    """
    uri = _plain_root(value, field)
    allowed_roots = [
        _plain_root(entry, f"[{STORAGE_ROOTS_OPTION[0]}] {STORAGE_ROOTS_OPTION[1]}")
        for entry in conf.get(*STORAGE_ROOTS_OPTION, fallback="").split(",")
        if entry.strip()
    ]
    if allowed_roots and not any(
        uri == root or uri.startswith(f"{root}/") for root in allowed_roots
    ):
        raise D6InputError(
            "is outside the storage roots this deployment allows",
            field=field,
            allowed=", ".join(allowed_roots) + " (or a directory below one)",
        )
    return uri


def _plain_root(value: Any, field: str) -> str:
    """Return *value* as ``scheme://location`` when its syntax is plain (see check_storage_root)."""
    schemes = ", ".join(f"{scheme}://" for scheme in STORAGE_ROOT_SCHEMES)
    allowed = (
        f"an absolute path or a URL ({schemes}) whose segments use only letters, digits "
        "and . _ ~ @ + = , - (no '..', no template syntax)"
    )
    if not isinstance(value, str) or not value:
        raise D6InputError("a storage root is required", field=field, allowed=allowed)
    text = value.rstrip("/")
    scheme, separator, location = text.partition("://")
    if not separator:
        scheme, location = "file", text
        if not text.startswith("/"):
            raise D6InputError("is neither absolute nor a URL", field=field, allowed=allowed)
    elif scheme.lower() not in STORAGE_ROOT_SCHEMES:
        raise D6InputError(
            f"the scheme '{printable(scheme, limit=20)}' is not allowed",
            field=field,
            allowed=allowed,
        )
    scheme = scheme.lower()
    segments = location.lstrip("/").split("/") if scheme == "file" else location.split("/")
    if scheme == "file" and not location.startswith("/"):
        raise D6InputError("a file:// root must be absolute", field=field, allowed=allowed)
    for segment in segments:
        if segment in (".", "..") or not _ROOT_SEGMENT.fullmatch(segment):
            shown = f"'{printable(segment, limit=40)}'" if segment else "(empty)"
            raise D6InputError(
                f"the path segment {shown} is not plain", field=field, allowed=allowed
            )
    return f"{scheme}:///{'/'.join(segments)}" if scheme == "file" else f"{scheme}://{location}"


def _is_static_path(path: Any) -> bool:
    """Return whether *path* is known at parse time (not Jinja, not an XCom)."""
    return isinstance(path, ObjectStoragePath) or (
        isinstance(path, str) and not _is_templated(path)
    )


def _privacy_key_conn(
    drop_fields: Sequence[str], pseudonymise: Sequence[str], conn_id: Any
) -> str | None:
    """Check the privacy options together; return the key connection's id (when needed)."""
    both = sorted(set(drop_fields) & set(pseudonymise))
    if both:
        raise D6InputError(
            f"{', '.join(both)} cannot be both dropped and pseudonymised",
            field="pseudonymise",
            allowed="fields not in drop_fields",
        )
    if conn_id is not None and (not isinstance(conn_id, str) or not conn_id.strip()):
        raise D6InputError(
            "not a connection id", field="pseudonym_key_conn_id", allowed="an Airflow conn id"
        )
    if pseudonymise and conn_id is None:
        raise D6InputError(
            "pseudonymise needs a key",
            field="pseudonym_key_conn_id",
            allowed="the id of an Airflow connection whose password is the pseudonym key",
        )
    return conn_id.strip() if conn_id else None


def _as_filters(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise D6InputError(
            f"{value!r} is not a mapping",
            field="filters",
            allowed="a dict of filter names to values",
        )
    if "school_id" in value:
        # One way to name the school, so a templated school_id cannot disagree with a filter.
        raise D6InputError(
            "pass the school as the school_id argument", field="filters", allowed="other filters"
        )
    return dict(value)


__all__ = [
    "EXTRA_COLUMN",
    "FORMATS",
    "STORAGE_ROOTS_OPTION",
    "STORAGE_ROOT_SCHEMES",
    "D6ToStorageOperator",
    "check_storage_root",
    "write_atomically",
]
