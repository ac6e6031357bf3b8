"""Typed errors raised by the d6 hooks.

Every error carries what a caller needs to decide what to do (status, d6's message, validation
errors, method and URL) and nothing it must not see: no header values, and d6's text has the
credentials of every connection read in this process redacted (a server may reflect them).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_d6._compat import AirflowException
from airflow_provider_d6.hooks._redact import redact, redact_value


class D6Error(AirflowException):
    """Base class of every error raised for a d6 request or response."""

    # AirflowException types this class attribute as an HTTPStatus for its own API server's
    # answers; a d6 error carries the status d6 answered with, or None when no answer came.
    status_code: int | None  # type: ignore[assignment]

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        validation_errors: dict[str, Any] | None = None,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
    ) -> None:
        # Text from d6 goes into logs and XCom, where the secrets masker does not reach.
        self.message = redact(message)
        self.status_code = status_code
        self.validation_errors = redact_value(dict(validation_errors or {}))
        self.method = method
        self.url = redact(url) if url else url
        # The parsed d6 body (JSON), kept for callers that need a field such as the record d6
        # returns with "Integration already activated". Never contains request headers.
        self.body = redact_value(body)
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.method and self.url:
            parts.append(f"{self.method} {self.url}")
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        text = ": ".join(parts)
        text = f"{text}: {self.message}" if text else self.message
        if self.validation_errors:
            details = "; ".join(f"{k}: {v}" for k, v in sorted(self.validation_errors.items()))
            text = f"{text} ({details})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # keep keyword-only state when pickled
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "status_code": self.status_code,
                    "validation_errors": self.validation_errors,
                    "method": self.method,
                    "url": self.url,
                    "body": self.body,
                },
                self._extra_state(),
            ),
        )

    def _extra_state(self) -> dict[str, Any]:
        return {}


def _rebuild(
    cls: type[D6Error], message: str, kwargs: dict[str, Any], extra: dict[str, Any]
) -> D6Error:
    err = cls(message, **kwargs, **extra)
    return err


class D6ConfigurationError(D6Error):
    """The d6 connection or a hook argument is unusable (raised before any request)."""


class D6InputError(D6Error, ValueError):
    """An argument (id, filter, note field, state…) is invalid; raised before any request.

    ``field`` names the offending argument; ``allowed`` says what would have been accepted.
    """

    def __init__(
        self, message: str, *, field: str | None = None, allowed: str | None = None, **kwargs: Any
    ) -> None:
        self.field = field
        self.allowed = allowed
        if field and field not in message:
            message = f"{field}: {message}"
        if allowed and allowed not in message:
            message = f"{message} (allowed: {allowed})"
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"field": self.field, "allowed": self.allowed}


class D6AuthenticationError(D6Error):
    """401: d6 refused the integrator credentials."""


class D6NotAuthorisedError(D6Error):
    """The school has not authorised this integrator: v2 401 "Client has not authorised access",
    v1 "Client access not authorised". Never retried by the hook."""


class D6NotActivatedError(D6Error):
    """ "Integration not activated": the school has not activated this module for the integrator.

    ``module`` names it ("Admin+ API", "Curriculum+ API", from d6's message) and ``api_type_id``
    is its API type (8, 9) when known. Never retried by the hook: activate the pair (Change
    Client Integration State) or ask d6 to enable the module. d6 may take a minute or two to
    honour a fresh activation, so an Airflow task retry a few minutes later can succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        module: str | None = None,
        api_type_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.module = module
        self.api_type_id = api_type_id
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"module": self.module, "api_type_id": self.api_type_id}


class D6ValidationError(D6Error):
    """400: d6 rejected the input; ``validation_errors`` maps field to d6's message."""


class D6NotFoundError(D6Error):
    """404: an unknown id, or (``route_not_found``) a route d6 does not serve."""

    def __init__(self, message: str, *, route_not_found: bool = False, **kwargs: Any) -> None:
        self.route_not_found = route_not_found
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"route_not_found": self.route_not_found}


class D6ForbiddenError(D6Error):
    """403: a d6 permission decision, or (``from_firewall``) an HTML page from d6's firewall."""

    def __init__(self, message: str, *, from_firewall: bool = False, **kwargs: Any) -> None:
        self.from_firewall = from_firewall
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"from_firewall": self.from_firewall}


class D6RateLimitError(D6Error):
    """429 after every retry: d6's rate limit; ``retry_after`` in seconds when d6 said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class D6ServerError(D6Error):
    """5xx after every retry."""


class D6ConnectionError(D6Error):
    """The request did not get an HTTP answer (refused, reset, timed out) after every retry.

    ``timed_out`` is true when the request was sent and d6 did not answer in time: d6 may still
    be processing it, so a write may take effect after this error was raised.
    """

    def __init__(self, message: str, *, timed_out: bool = False, **kwargs: Any) -> None:
        self.timed_out = timed_out
        super().__init__(message, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {"timed_out": self.timed_out}


class D6ResponseError(D6Error):
    """A 2xx whose body is empty, truncated or not the JSON that was expected."""


__all__ = [
    "D6AuthenticationError",
    "D6ConfigurationError",
    "D6ConnectionError",
    "D6Error",
    "D6ForbiddenError",
    "D6InputError",
    "D6NotActivatedError",
    "D6NotAuthorisedError",
    "D6NotFoundError",
    "D6RateLimitError",
    "D6ResponseError",
    "D6ServerError",
    "D6ValidationError",
]
