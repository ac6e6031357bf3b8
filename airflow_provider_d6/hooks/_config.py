"""Read a d6 connection once into settings: base URL, credentials and our extras.

Shared by the sync and async hooks so that both resolve precedence (hook kwargs > connection
extras > defaults) and refuse unsafe URLs the same way.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_d6 import __version__
from airflow_provider_d6.exceptions import D6ConfigurationError
from airflow_provider_d6.hooks._retry import RetryPolicy

DEFAULT_BASE_URL = "https://integrate.d6plus.co.za/api"
USER_AGENT = f"airflow-provider-d6/{__version__}"
ACTIVATION_ROUTES = ("auto", "v2", "v1")
DEFAULTS: dict[str, Any] = {
    "timeout": 30.0,
    "max_retries": 5,
    "requests_per_second": None,  # adaptive
    "activation_route": "auto",
    "verify": True,
}
# The extras this provider owns. HttpHook would send any of them it does not know as an HTTP
# header; they are read here and never handed to it.
OWN_EXTRAS = tuple(DEFAULTS)


@dataclass(frozen=True)
class D6Settings:
    """Everything a hook needs from its connection, resolved once."""

    base_url: str
    login: str
    password: str = field(repr=False)
    timeout: float
    max_retries: int
    requests_per_second: float | None
    activation_route: str
    verify: bool | str

    def auth_headers(self) -> dict[str, str]:
        """Return the two d6 credential headers: the single place they are built."""
        return {"HTTP-X-USERNAME": self.login, "HTTP-X-PASSWORD": self.password}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(
    name: str, value: Any, *, integer: bool = False, minimum: float = 0.0, strict: bool = True
) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):  # a JSON true is not a number of seconds
        raise D6ConfigurationError(f"{name} must be {kind}, got {value!r}")
    try:
        number = int(str(value).strip()) if integer else float(value)
    except (TypeError, ValueError):
        raise D6ConfigurationError(f"{name} must be {kind}, got {value!r}") from None
    if number < minimum or (strict and number == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise D6ConfigurationError(f"{name} must be {bound}, got {value!r}")
    return number


def _verify(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    if not os.path.exists(text):
        raise D6ConfigurationError(
            f"verify must be true, false or the path of a CA bundle; {text!r} does not exist"
        )
    return text


def resolve_options(extra: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
    """Return our five options with precedence hook kwargs > connection extras > defaults.

    :param extra: the connection's extras (``extra_dejson``)
    :param kwargs: the hook's keyword arguments (None means "not given")
    """
    extra = extra or {}
    options: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        value = kwargs.get(name)
        if _blank(value):
            value = extra.get(name)
        options[name] = default if _blank(value) else value
    options["timeout"] = _number("timeout", options["timeout"])
    options["max_retries"] = _number(
        "max_retries", options["max_retries"], integer=True, strict=False
    )
    if options["requests_per_second"] is not None:
        options["requests_per_second"] = _number(
            "requests_per_second", options["requests_per_second"]
        )
    route = str(options["activation_route"]).strip().lower()
    if route not in ACTIVATION_ROUTES:
        raise D6ConfigurationError(
            f"activation_route must be one of {', '.join(ACTIVATION_ROUTES)}, got {route!r}"
        )
    options["activation_route"] = route
    options["verify"] = _verify(options["verify"])
    return options


def check_base_url(host: str | None) -> str:
    """Return the normalised base URL, refusing plain http:// to anything but loopback.

    :param host: the connection's host field (empty means d6's production URL)
    """
    url = (host or "").strip() or DEFAULT_BASE_URL
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise D6ConfigurationError(
            f"host must be an https:// URL such as {DEFAULT_BASE_URL}, got {url!r}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise D6ConfigurationError(
            "host must be a plain base URL (no credentials, query or fragment)"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise D6ConfigurationError(
            f"refusing plain http:// for {parts.hostname}: the d6 credentials are sent as headers on "
            "every request and would travel in clear text; use https://"
        )
    return url.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_from_connection(conn: Any, **kwargs: Any) -> D6Settings:
    """Build ``D6Settings`` from an Airflow connection and the hook's keyword arguments.

    :param conn: the Airflow connection (host, login, password, extra_dejson)
    :param kwargs: the hook's option overrides
    """
    options = resolve_options(getattr(conn, "extra_dejson", None), **kwargs)
    base_url = check_base_url(conn.host)
    if _blank(conn.login):
        raise D6ConfigurationError(
            f"connection {conn.conn_id!r}: login (the d6 integrator username) is empty"
        )
    if _blank(conn.password):
        raise D6ConfigurationError(
            f"connection {conn.conn_id!r}: password (the d6 integrator password) is empty"
        )
    return D6Settings(base_url=base_url, login=conn.login, password=conn.password, **options)


def default_verify(verify: bool | str) -> bool | str:
    """Return the CA setting to pass on every request.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` per request; resolving it here
    once, and passing the result explicitly, makes an explicit ``verify`` in the connection win.
    """
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def build_policy(
    settings: D6Settings, retry_policy: RetryPolicy | None, max_retries: int | None
) -> RetryPolicy:
    """Return the retry policy a hook uses.

    ``max_retries`` counts attempts in total (0 and 1 both mean "never retry"). An explicit
    ``retry_policy`` kwarg is used as given unless a ``max_retries`` kwarg is given too; without
    one, the connection's (or the default) ``max_retries`` sets the attempts.

    :param settings: the resolved connection settings
    :param retry_policy: the hook's ``retry_policy`` kwarg
    :param max_retries: the hook's ``max_retries`` kwarg
    """
    if retry_policy is None:
        return RetryPolicy(max_attempts=max(1, settings.max_retries))
    if max_retries is None:
        return retry_policy
    return RetryPolicy(
        max(1, settings.max_retries),
        retry_policy.base,
        retry_policy.cap,
        retry_policy.retry_after_cap,
    )


def missing_connection(conn_id: str) -> D6ConfigurationError:
    """Return the error for a connection id that no backend defines."""
    return D6ConfigurationError(
        f"connection {conn_id!r} is not defined: add a d6 connection in the UI, a secrets backend "
        f"or the AIRFLOW_CONN_{conn_id.upper()} environment variable"
    )


def prepare_connection(
    conn: Any, overrides: dict[str, Any], retry_policy: RetryPolicy | None
) -> tuple[D6Settings, RetryPolicy, Any]:
    """Turn a connection into settings, a retry policy and a throttle, masking the password.

    Shared by the sync and async hooks so that both read a connection the same way.

    :param conn: the Airflow connection
    :param overrides: the hook's keyword arguments (None means "not given")
    :param retry_policy: an explicit policy passed to the hook, if any
    """
    from airflow_provider_d6.hooks._throttle import make_throttle

    settings = settings_from_connection(conn, **overrides)
    from airflow.sdk.log import mask_secret  # imported here: structlog setup is not free

    mask_secret(settings.password)
    policy = build_policy(settings, retry_policy, overrides["max_retries"])
    return settings, policy, make_throttle(settings.requests_per_second)
