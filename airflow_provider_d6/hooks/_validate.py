"""Re-export of :mod:`airflow_provider_d6.validation`, where the input checks live."""

from __future__ import annotations

from airflow_provider_d6.validation import (
    NOTE_FIELDS,
    NOTE_STATUSES,
    NOTE_TYPE_INTERNAL,
    NOTE_TYPE_PROMISE,
    NOTE_TYPE_TEXT,
    SCHOOL_ONLY_FIELDS,
    check_bool,
    check_date,
    check_filters,
    check_id,
    check_money,
    check_note,
    check_promises,
    query_bool,
)

__all__ = [
    "NOTE_FIELDS",
    "NOTE_STATUSES",
    "NOTE_TYPE_INTERNAL",
    "NOTE_TYPE_PROMISE",
    "NOTE_TYPE_TEXT",
    "SCHOOL_ONLY_FIELDS",
    "check_bool",
    "check_date",
    "check_filters",
    "check_id",
    "check_money",
    "check_note",
    "check_promises",
    "query_bool",
]
