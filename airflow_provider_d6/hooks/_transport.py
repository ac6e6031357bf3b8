"""The transport D6Hook gives its resource mixins, declared once.

Each resource module (``_client_integrations.py``, ``_debt_management.py``, ...) holds typed
methods for its resources and reaches d6 only through the members below, which ``D6Hook``
implements. A mixin declares the dependency by deriving from ``MixinBase``: the Protocol for the
type checker, plain ``object`` at run time (so no Protocol machinery sits in the hook's MRO).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_d6.hooks._config import D6Settings
    from airflow_provider_d6.hooks._endpoints import Endpoint
    from airflow_provider_d6.hooks._retry import RetryPolicy


class D6Transport(Protocol):
    """What a resource mixin may use of the hook it is mixed into."""

    @property
    def log(self) -> Logger:
        """The hook's logger."""
        ...

    @property
    def base_url(self) -> str:
        """The d6 base URL (``.../api``), for error text."""
        ...

    @property
    def settings(self) -> D6Settings:
        """The connection's settings (reads the connection on first use)."""
        ...

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy in effect."""
        ...

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        school_id: int | None = None,
        idempotent: bool = True,
        allow_empty: bool = False,
    ) -> Any:
        """Send one request through the throttle, the retry policy and the error mapping.

        :param method: the HTTP method
        :param path: the path below the base URL (``/v2/...``)
        :param params: the query parameters
        :param json: the JSON body
        :param school_id: sent as ``HTTP-X-SCHOOLID`` when given
        :param idempotent: whether an ambiguous failure may be re-sent blindly
        :param allow_empty: accept an empty 2xx body (returned as None)
        :returns: the parsed JSON payload
        """
        ...

    def _iter_endpoint(
        self, endpoint: Endpoint, school_id: int | None, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paginated collection with already-checked *params*."""
        ...

    def _iter_resource(
        self, endpoint: Endpoint, school_id: Any, filters: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Check *school_id* and *filters* eagerly, then yield the records (paged or not)."""
        ...

    def _get_one(self, endpoint: Endpoint, school_id: int | None, record_id: Any) -> dict[str, Any]:
        """Return one record of *endpoint* by id (ids coerced as the catalogue says)."""
        ...


if TYPE_CHECKING:
    MixinBase = D6Transport
else:
    MixinBase = object
