"""Every Airflow name the provider uses whose home differs between Airflow 3.1, 3.2 and 3.3.

The provider, its example DAGs and its tests import these names from here and nowhere else, so
that supporting another Airflow version is a change to this module only. Most names come from
``airflow.providers.common.compat.sdk`` (a dependency of the provider), which looks each name up
in the newest home first. The rest are the few that common-compat does not cover.

Names that pull in Airflow's models (``DagBag``) are loaded on first use, so importing an operator
stays as cheap as importing ``airflow.sdk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
    Asset,
    AssetAlias,
    BaseHook,
    BaseOperator,
    BaseSensorOperator,
    ObjectStoragePath,
    ParamValidationError,
    PokeReturnValue,
    TaskDeferred,
    conf,
    literal,
    mask_secret,
    redact,
)

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag as DagBag
    from airflow.sdk import AssetOrTimeSchedule as AssetOrTimeSchedule
    from airflow.sdk import CronDataIntervalTimetable as CronDataIntervalTimetable
    from airflow.sdk.exceptions import AirflowRescheduleException as AirflowRescheduleException

# Where each lazily loaded name lives, newest Airflow first.
_LAZY: dict[str, tuple[str, ...]] = {
    # 3.2 moved DagBag out of airflow.models.
    "DagBag": ("airflow.dag_processing.dagbag", "airflow.models.dagbag"),
    # 3.2 gave DAG authors the task SDK's own timetables; on 3.1 the core one is the DAG author's.
    "CronDataIntervalTimetable": ("airflow.sdk", "airflow.timetables.interval"),
    "AssetOrTimeSchedule": ("airflow.sdk", "airflow.timetables.assets"),
    "AirflowRescheduleException": ("airflow.sdk.exceptions", "airflow.exceptions"),
}


def __getattr__(name: str) -> Any:
    homes = _LAZY.get(name)
    if homes is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    for home in homes:
        try:
            value = getattr(importlib.import_module(home), name)
        except (ImportError, AttributeError):
            continue
        globals()[name] = value
        return value
    raise ImportError(f"{name} is in none of {', '.join(homes)}")


async def get_async_connection(conn_id: str, hook: Any = None) -> Any:
    """Look a connection up from async code (a trigger) without blocking the event loop.

    Before Airflow 3.3.2 ``BaseHook.aget_connection`` masks the connection's secrets with a
    synchronous call to the supervisor, which raises ``DeadlockImminentError`` in the triggerer
    when another trigger's call is in flight. common-compat picks the safe way on each version:
    ``aget_connection`` where it masks asynchronously, else ``get_connection`` in a thread.

    :param conn_id: the connection id
    :param hook: the hook (class or instance) whose lookup to use; ``BaseHook`` when None
    """
    from airflow.providers.common.compat.connection import get_async_connection as _lookup

    return await _lookup(conn_id, hook)


async def run_sync(func: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run sync code that may call the task SDK (``mask_secret``, ``extra_dejson``) from async code.

    Such calls message Airflow's supervisor synchronously. On the event loop's thread that fails
    (Airflow 3.1's triggerer) or raises ``DeadlockImminentError`` (an async task whose other
    coroutine is mid-call), so it runs in a worker thread, as common-compat does for
    ``get_connection``: the supervisor is then waited for without blocking the loop.

    :param func: the sync callable
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(func)(*args, **kwargs)


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "AssetAlias",
    "AssetOrTimeSchedule",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "CronDataIntervalTimetable",
    "DagBag",
    "ObjectStoragePath",
    "ParamValidationError",
    "PokeReturnValue",
    "TaskDeferred",
    "conf",
    "get_async_connection",
    "literal",
    "mask_secret",
    "redact",
    "run_sync",
]
