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


def _run_conf_refused() -> tuple[type[Exception], ...]:
    from airflow import __version__ as airflow_version

    # 3.2's scheduler-side params (airflow.serialization.definitions.param) raise a plain
    # ValueError where 3.1 and 3.3 raise ParamValidationError; the message names the param either way.
    if airflow_version.startswith("3.2."):
        return (ParamValidationError, ValueError)
    return (ParamValidationError,)


#: What creating a run (``dag.test(run_conf=...)``, the scheduler) raises for a conf that fails
#: the DAG's params.
RUN_CONF_REFUSED = _run_conf_refused()

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


async def get_async_extra_dejson(conn: Any) -> dict[str, Any]:
    """Read a connection's extras from async code (a trigger) without blocking the event loop.

    ``extra_dejson`` masks the extras' secrets with a synchronous call to the supervisor. From
    Airflow 3.3.2 ``Connection.aextra_dejson`` masks them asynchronously; before, common-compat
    reads ``extra_dejson`` in a worker thread.

    :param conn: the connection, e.g. from ``get_async_connection``
    """
    from airflow.providers.common.compat.connection import get_async_extra_dejson as _extra

    extra: dict[str, Any] = await _extra(conn)
    return extra


async def amask_secret(secret: Any, name: str | None = None) -> None:
    """``mask_secret`` for async code (a trigger): never a synchronous supervisor call on the loop.

    From Airflow 3.3.2 ``airflow.sdk.log.amask_secret`` tells the supervisor asynchronously;
    before, ``mask_secret`` runs in a worker thread (see ``run_sync``). Either way the secret is
    masked in this process's logs too.

    :param secret: the value to mask
    :param name: the name it is known by, if any
    """
    try:
        from airflow.sdk.log import amask_secret as _amask
    except ImportError:  # Airflow < 3.3.2
        await run_sync(mask_secret, secret, name)
        return
    await _amask(secret, name)


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
    "RUN_CONF_REFUSED",
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
    "amask_secret",
    "conf",
    "get_async_connection",
    "get_async_extra_dejson",
    "literal",
    "mask_secret",
    "redact",
    "run_sync",
]
