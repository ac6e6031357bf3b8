"""Read a d6 connection once into settings: base URL, credentials and our extras.

Shared by the sync and async hooks so that both resolve precedence (hook kwargs > connection
extras > defaults) and refuse unsafe URLs the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_d6 import __version__
from airflow_provider_d6.exceptions import D6ConfigurationError
from airflow_provider_d6.hooks._limits import DEFAULT_MAX_RESPONSE_BYTES
from airflow_provider_d6.hooks._redact import register
from airflow_provider_d6.hooks._retry import RetryPolicy

log = logging.getLogger(f"airflow.task.hooks.{__name__}")

DEFAULT_BASE_URL = "https://integrate.d6plus.co.za/api"
USER_AGENT = f"airflow-provider-d6/{__version__}"
ACTIVATION_ROUTES = ("auto", "v2", "v1")
SHARED_THROTTLE_CHOICES = ("none", "host")
DEFAULTS: dict[str, Any] = {
    "timeout": 30.0,
    "max_attempts": 5,
    "requests_per_second": None,  # adaptive
    "activation_route": "auto",
    "verify": True,
    "max_response_bytes": DEFAULT_MAX_RESPONSE_BYTES,
    "shared_throttle": "none",
}
# Old names still read, each for the option it always meant: ``max_retries`` was the total
# number of attempts all along (0 and 1 both meant one attempt).
ALIASES = {"max_retries": "max_attempts"}
# The extras this provider owns. HttpHook would send any of them it does not know as an HTTP
# header; they are read here and never handed to it.
OWN_EXTRAS = (*DEFAULTS, *ALIASES)
# Allowed ranges (inclusive unless the low bound is marked exclusive). Seconds past an hour, a
# throttle above ten thousand calls a second or dozens of attempts are typos, not settings.
RANGES: dict[str, tuple[float, float, bool]] = {  # name: (low, high, low is exclusive)
    "timeout": (0.0, 3600.0, True),
    "requests_per_second": (0.0, 10000.0, True),
    "max_attempts": (1, 20, False),
    "max_retries": (0, 20, False),
    # One decoded answer: at least one read chunk (64 KiB), at most 1 GiB.
    "max_response_bytes": (65536, 1 << 30, False),
}
_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12})([eE][+-]?[0-9]{1,3})?")


@dataclass(frozen=True)
class D6Settings:
    """Everything a hook needs from its connection, resolved once."""

    base_url: str
    login: str
    password: str = field(repr=False)
    timeout: float
    max_attempts: int
    requests_per_second: float | None
    activation_route: str
    verify: bool | str
    max_response_bytes: int
    #: "host": one throttle for every task on this host using the same credential
    shared_throttle: str = "none"

    @property
    def max_retries(self) -> int:
        """Return ``max_attempts`` under its old name (it always counted attempts in total)."""
        return self.max_attempts

    def auth_headers(self) -> dict[str, str]:
        """Return the two d6 credential headers: the single place they are built."""
        return {"HTTP-X-USERNAME": self.login, "HTTP-X-PASSWORD": self.password}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _shown(value: Any) -> str:
    """Return *value* for an error message: repr-escaped and cut short (it may be anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(name: str, value: Any, *, integer: bool = False) -> Any:
    """Return *value* as a finite number inside ``RANGES[name]``, or raise naming field and range."""
    low, high, exclusive = RANGES[name]
    kind = "an integer" if integer else "a number"
    opening = "(" if exclusive else "["
    bounds = f"{opening}{_bound(low)}, {_bound(high)}]"
    refusal = D6ConfigurationError(f"{name} must be {kind} in {bounds}, got {_shown(value)}")
    if isinstance(value, bool):  # a JSON true is not a number of seconds
        raise refusal
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only, a dozen at most: int() also reads "١٢٣" and 5,000-digit numbers.
        if not (_INTEGER if integer else _DECIMAL).fullmatch(text):
            raise refusal
        number: float = int(text) if integer else float(text)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or (integer and not value.is_integer()):
            raise refusal
        number = int(value) if integer else value
    else:
        raise refusal
    if not (low < number if exclusive else low <= number) or number > high:
        raise refusal
    return int(number) if integer else float(number)


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
            f"verify must be true, false or the path of a CA bundle; {_shown(text)} does not exist"
        )
    return text


def _attempts(extra: dict[str, Any], kwargs: dict[str, Any]) -> int:
    """Return the attempts in total: kwargs > extras, ``max_attempts`` over its alias per layer."""
    for layer in (kwargs, extra):
        given = {name: layer.get(name) for name in ("max_attempts", "max_retries")}
        given = {name: value for name, value in given.items() if not _blank(value)}
        if "max_attempts" in given:
            attempts = int(_number("max_attempts", given["max_attempts"], integer=True))
            if "max_retries" in given:
                alias = max(1, _number("max_retries", given["max_retries"], integer=True))
                if alias != attempts:
                    raise D6ConfigurationError(
                        f"max_attempts ({attempts}) and its old name max_retries ({alias}) "
                        "disagree; set max_attempts only"
                    )
            return attempts
        if "max_retries" in given:
            return max(1, int(_number("max_retries", given["max_retries"], integer=True)))
    return int(DEFAULTS["max_attempts"])


def resolve_options(extra: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
    """Return our options with precedence hook kwargs > connection extras > defaults.

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
    options["max_attempts"] = _attempts(extra, kwargs)
    if options["requests_per_second"] is not None:
        options["requests_per_second"] = _number(
            "requests_per_second", options["requests_per_second"]
        )
    route = str(options["activation_route"]).strip().lower()
    if route not in ACTIVATION_ROUTES:
        raise D6ConfigurationError(
            f"activation_route must be one of {', '.join(ACTIVATION_ROUTES)}, got {_shown(route)}"
        )
    options["activation_route"] = route
    shared = str(options["shared_throttle"]).strip().lower()
    if shared not in SHARED_THROTTLE_CHOICES:
        raise D6ConfigurationError(
            f"shared_throttle must be one of {', '.join(SHARED_THROTTLE_CHOICES)}, "
            f"got {_shown(shared)}"
        )
    options["shared_throttle"] = shared
    options["verify"] = _verify(options["verify"])
    options["max_response_bytes"] = _number(
        "max_response_bytes", options["max_response_bytes"], integer=True
    )
    return options


def check_base_url(host: str | None) -> str:
    """Return the normalised base URL (ending in ``/api``), refusing unsafe or wrong ones.

    Plain http:// is refused to anything but loopback. A bare host (``https://host``) gets the
    ``/api`` segment every d6 route lives under, with a warning; any other path must end in
    ``/api`` (the hooks add ``/v1`` or ``/v2`` per endpoint).

    :param host: the connection's host field (empty means d6's production URL)
    """
    url = (host or "").strip() or DEFAULT_BASE_URL
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise D6ConfigurationError(
            f"host must be an https:// URL such as {DEFAULT_BASE_URL}, got {_shown(url)}"
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
    url = url.rstrip("/")
    path = parts.path.rstrip("/")
    if not path:
        log.warning(
            "d6 base URL %s has no /api segment; using %s/api (every d6 route is under /api)",
            url,
            url,
        )
        return f"{url}/api"
    if not path.endswith("/api"):
        hint = " (drop what follows /api: the hook adds the version per endpoint)"
        raise D6ConfigurationError(
            f"host must be d6's base URL ending in /api, such as {DEFAULT_BASE_URL}, got "
            f"{_shown(url)}" + (hint if "/api/" in path + "/" else "")
        )
    return url


def never_proxied(base_url: str) -> bool:
    """Return True when requests to *base_url* must not go through any proxy: loopback.

    ``HTTP_PROXY`` would otherwise carry the credential headers of a plain-http sandbox URL in
    clear text to the proxy (and ``NO_PROXY`` is easy to forget); d6 itself is never on loopback.
    """
    return _is_loopback(urlsplit(base_url).hostname or "")


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def check_credential(conn_id: str | None, name: str, what: str, value: Any) -> str:
    """Return a login or password that can be sent as an HTTP header, or raise.

    Printable ASCII only, with no surrounding whitespace: a trailing newline or a control
    character makes the HTTP library raise an error that quotes the value, and the two HTTP
    clients encode other characters differently (latin-1 and UTF-8), so such a credential would
    work in one hook and not the other. The error never repeats the value.

    :param conn_id: the connection, for the message
    :param name: ``login`` or ``password``
    :param what: what the field holds, for the message
    :param value: the field's value
    """
    if _blank(value):
        raise D6ConfigurationError(f"connection {conn_id!r}: {name} ({what}) is empty")
    if not isinstance(value, str):
        raise D6ConfigurationError(f"connection {conn_id!r}: {name} ({what}) must be text")
    problem = None
    if value != value.strip():
        problem = "starts or ends with whitespace (a space, tab, newline or carriage return)"
    elif not value.isascii():
        problem = "contains a character outside printable ASCII"
    elif not value.isprintable():
        problem = "contains a control character"
    if problem:
        raise D6ConfigurationError(
            f"connection {conn_id!r}: {name} ({what}) {problem}; it is sent as an HTTP header, "
            f"so re-enter it as printable ASCII with nothing around it (value not shown)"
        )
    return value


def settings_from_connection(
    conn: Any, *, extra: dict[str, Any] | None = None, **kwargs: Any
) -> D6Settings:
    """Build ``D6Settings`` from an Airflow connection and the hook's keyword arguments.

    :param conn: the Airflow connection (host, login, password, extra_dejson)
    :param extra: the connection's extras when already read (async code reads them without
        blocking); None reads ``conn.extra_dejson``
    :param kwargs: the hook's option overrides
    """
    conn_id = getattr(conn, "conn_id", None)
    if extra is None:
        extra = getattr(conn, "extra_dejson", None)
    extra = extra or {}
    unknown = sorted(str(key) for key in extra if key not in OWN_EXTRAS)
    if unknown:
        log.warning(
            "connection %r: ignoring unknown extra(s) %s; the known extras are %s",
            conn_id,
            ", ".join(_shown(key) for key in unknown[:10]) + (", ..." if len(unknown) > 10 else ""),
            ", ".join(OWN_EXTRAS),
        )
    options = resolve_options(extra, **kwargs)
    base_url = check_base_url(conn.host)
    login = check_credential(conn_id, "login", "the d6 integrator username", conn.login)
    password = check_credential(conn_id, "password", "the d6 integrator password", conn.password)
    return D6Settings(base_url=base_url, login=login, password=password, **options)


def default_verify(verify: bool | str) -> bool | str:
    """Return the CA setting to pass on every request.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` per request; resolving it here
    once, and passing the result explicitly, makes an explicit ``verify`` in the connection win.
    """
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def build_policy(
    settings: D6Settings, retry_policy: RetryPolicy | None, attempts_given: bool
) -> RetryPolicy:
    """Return the retry policy a hook uses.

    ``max_attempts`` counts attempts in total, the first one included. An explicit
    ``retry_policy`` kwarg is used as given unless a ``max_attempts`` (or ``max_retries``) kwarg
    is given too; without one, the connection's (or the default) ``max_attempts`` sets them.

    :param settings: the resolved connection settings
    :param retry_policy: the hook's ``retry_policy`` kwarg
    :param attempts_given: whether the hook got a ``max_attempts``/``max_retries`` kwarg
    """
    if retry_policy is None:
        return RetryPolicy(max_attempts=settings.max_attempts)
    if not attempts_given:
        return retry_policy
    return RetryPolicy(
        settings.max_attempts,
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
    """Turn a connection into settings, a retry policy and a throttle, masking the credentials.

    Shared by the sync and async hooks so that both read a connection the same way (the async
    hook through ``aprepare_connection``). Logs a warning each time a connection with
    ``verify=false`` is read (once per hook, so per task).

    :param conn: the Airflow connection
    :param overrides: the hook's keyword arguments (None means "not given")
    :param retry_policy: an explicit policy passed to the hook, if any
    """
    from airflow_provider_d6._compat import mask_secret

    settings = settings_from_connection(conn, **overrides)
    # Both credentials: the username identifies the integrator and is half of what d6 checks.
    register(settings.login, settings.password)
    mask_secret(settings.login)
    mask_secret(settings.password)
    return _finish_preparing(conn, settings, overrides, retry_policy)


async def aprepare_connection(
    conn: Any, overrides: dict[str, Any], retry_policy: RetryPolicy | None
) -> tuple[D6Settings, RetryPolicy, Any]:
    """``prepare_connection`` for an event loop (a trigger): the same result, never blocking it.

    Reading ``extra_dejson`` and ``mask_secret`` each message Airflow's supervisor synchronously,
    which must not happen on the triggerer's event loop; the asynchronous ways are
    ``_compat``'s, chosen per Airflow version.

    :param conn: the Airflow connection
    :param overrides: the hook's keyword arguments (None means "not given")
    :param retry_policy: an explicit policy passed to the hook, if any
    """
    from airflow_provider_d6._compat import amask_secret, get_async_extra_dejson

    extra = await get_async_extra_dejson(conn)
    settings = settings_from_connection(conn, extra=extra, **overrides)
    register(settings.login, settings.password)
    await amask_secret(settings.login)
    await amask_secret(settings.password)
    return _finish_preparing(conn, settings, overrides, retry_policy)


def _finish_preparing(
    conn: Any, settings: D6Settings, overrides: dict[str, Any], retry_policy: RetryPolicy | None
) -> tuple[D6Settings, RetryPolicy, Any]:
    """Warn about ``verify=false`` and build the retry policy and throttle (no Airflow calls)."""
    from airflow_provider_d6.hooks._throttle import make_throttle

    if settings.verify is False:
        log.warning(
            "connection %r has verify=false: d6's TLS certificate is not checked, so anyone on "
            "the network path can read the credentials and the data; use it only for private "
            "test setups",
            getattr(conn, "conn_id", None),
        )
    given = any(not _blank(overrides.get(name)) for name in ("max_attempts", "max_retries"))
    policy = build_policy(settings, retry_policy, given)
    shared_path = None
    if settings.shared_throttle == "host":
        from airflow_provider_d6.hooks._throttle import shared_throttle_path

        shared_path = shared_throttle_path(settings.base_url, settings.login)
    return settings, policy, make_throttle(settings.requests_per_second, shared_path)
