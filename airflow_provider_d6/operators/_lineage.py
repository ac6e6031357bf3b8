"""OpenLineage for the d6 exports: which d6 collection was read and which file was written.

``apache-airflow-providers-openlineage`` is optional: nothing here imports it, or the OpenLineage
client, until its listener asks an operator for its lineage after a task succeeded, so a
deployment without it pays nothing.

Naming (stable across runs, so that lineage tools join the runs of one export):

- a d6 collection is namespace ``d6://<API host>`` and name ``schools/<school_id>/<resource>``
  (``<resource>`` alone for the district-wide reads without a school, such as ``schools``);
- a file is named as OpenLineage's naming conventions and Airflow's own file-asset converter
  name it: namespace ``file`` and the absolute path for local files, ``<scheme>://<bucket>`` and
  the key for object stores (any storage connection id in the URI is dropped: it says how to
  reach the data, not which data it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_d6.hooks._endpoints import ENDPOINTS

D6_SCHEME = "d6"
# The CSV export's last column (operators.storage.EXTRA_COLUMN); repeated here so that this module
# imports nothing of the operator's.
_CSV_EXTRA_COLUMN = "extra"


def d6_namespace(base_url: str) -> str:
    """Return the OpenLineage namespace of the d6 API at *base_url*: ``d6://host[:port]``.

    Only the host and port: never credentials, query or path.

    :param base_url: the connection's API base URL
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{D6_SCHEME}://{host}"


def d6_dataset_name(resource: str, school_id: int | None) -> str:
    """Return the OpenLineage name of one school's d6 collection.

    :param resource: the collection (a key of the endpoint catalogue)
    :param school_id: the school, or None for a district-wide read
    """
    if school_id is None:
        return resource
    return f"schools/{int(school_id)}/{resource}"


def storage_dataset_id(uri: str) -> tuple[str, str]:
    """Return the OpenLineage ``(namespace, name)`` of the file at *uri*.

    :param uri: the written file as a URI (``file:///…``, ``s3://bucket/key``, …)
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower() or "file"
    netloc = parts.netloc.rpartition("@")[2]
    if scheme in ("file", "local"):
        return (f"file://{netloc}" if netloc else "file"), parts.path
    return f"{scheme}://{netloc}", parts.path.lstrip("/")


def schema_fields(
    resource: str,
    *,
    extra_column: bool = False,
    dropped: Sequence[str] = (),
    pseudonymised: Sequence[str] = (),
) -> list[tuple[str, str | None]]:
    """Return ``(field, type)`` for the documented fields of *resource*, in catalogue order.

    The catalogue documents field names and what the hooks coerce: ids are integers (v2 and
    v1), and a v1 (Admin+/Curriculum+) row also knows its integer fields, its money and marks
    (exact decimal text, ``"decimal"``) and its codes (``"string"``, as ``_v1.v1_field_type``).
    Every other type is left unset rather than guessed.

    :param resource: the collection
    :param extra_column: add the CSV export's ``extra`` column (undocumented fields as JSON text)
    :param dropped: fields the export removed (``drop_fields``), absent from what it wrote
    :param pseudonymised: fields the export replaced by pseudonyms, text in what it wrote
    """
    from airflow_provider_d6.hooks._v1 import v1_field_type

    endpoint = ENDPOINTS[resource]

    def kind(name: str) -> str | None:
        if name in pseudonymised:
            return "string"
        if endpoint.version == "v1":
            return v1_field_type(endpoint, name)
        return "integer" if name in endpoint.id_fields else None

    fields: list[tuple[str, str | None]] = [
        (name, kind(name)) for name in endpoint.fields if name not in dropped
    ]
    if extra_column:
        fields.append((_CSV_EXTRA_COLUMN, "string"))
    return fields


def export_lineage(
    *,
    base_url: str,
    resource: str,
    school_id: int | None,
    result: Mapping[str, Any] | None,
    path: str,
    file_format: str,
) -> Any:
    """Return the ``OperatorLineage`` of one export, or None without the OpenLineage provider.

    :param base_url: the d6 connection's API base URL
    :param resource: the collection read
    :param school_id: the school read (None for district-wide reads)
    :param result: the export's result (``records``, ``bytes``), None when it is not known
    :param path: the written file as a URI
    :param file_format: ``"jsonl"`` or ``"csv"`` (the CSV file has the extra column)
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.generated.documentation_dataset import DocumentationDatasetFacet
        from openlineage.client.generated.input_statistics_input_dataset import (
            InputStatisticsInputDatasetFacet,
        )
        from openlineage.client.generated.output_statistics_output_dataset import (
            OutputStatisticsOutputDatasetFacet,
        )
        from openlineage.client.generated.schema_dataset import (
            SchemaDatasetFacet,
            SchemaDatasetFacetFields,
        )
    except ImportError:
        return None

    def schema(fields: Sequence[tuple[str, str | None]]) -> Any:
        return SchemaDatasetFacet(
            fields=[
                SchemaDatasetFacetFields(name=name, type=kind, ordinal_position=position)
                for position, (name, kind) in enumerate(fields, start=1)
            ]
        )

    records = _count(result, "records")
    size = _count(result, "bytes")
    where = "the district" if school_id is None else f"school {int(school_id)}"
    source = InputDataset(
        namespace=d6_namespace(base_url),
        name=d6_dataset_name(resource, school_id),
        facets={
            "schema": schema(schema_fields(resource)),
            "documentation": DocumentationDatasetFacet(
                description=f"d6+ Integrate {resource} of {where}"
            ),
        },
        inputFacets=(
            {"inputStatistics": InputStatisticsInputDatasetFacet(rowCount=records)}
            if records is not None
            else {}
        ),
    )
    namespace, name = storage_dataset_id(path)
    target = OutputDataset(
        namespace=namespace,
        name=name,
        facets={
            "schema": schema(
                schema_fields(
                    resource,
                    extra_column=file_format == "csv",
                    dropped=[str(f) for f in (result or {}).get("dropped_fields") or ()],
                    pseudonymised=[
                        str(f) for f in (result or {}).get("pseudonymised_fields") or ()
                    ],
                )
            )
        },
        outputFacets=(
            {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=records, size=size)}
            if records is not None
            else {}
        ),
    )
    return OperatorLineage(inputs=[source], outputs=[target])


def _count(result: Mapping[str, Any] | None, key: str) -> int | None:
    value = (result or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = [
    "D6_SCHEME",
    "d6_dataset_name",
    "d6_namespace",
    "export_lineage",
    "schema_fields",
    "storage_dataset_id",
]
