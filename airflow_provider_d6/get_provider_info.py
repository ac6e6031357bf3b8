"""Provider metadata read by Airflow's ProvidersManager.

Kept import-free on purpose: Airflow imports this for every CLI call and API-server start, so it
must not pull in hooks, requests or the sandbox.
"""

from __future__ import annotations

from typing import Any

# The package's __init__ holds the version and imports nothing, so this stays cheap.
from airflow_provider_d6 import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata for Airflow."""
    return {
        "package-name": "airflow-provider-d6",
        "name": "d6+ Integrate",
        "description": "Hooks, operators, a sensor and a deferrable trigger for the d6+ Integrate API "
        "(d6+ SAMS), plus a local d6 sandbox.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "d6+ Integrate",
                "external-doc-url": "https://integrate.d6plus.co.za/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "d6+ Integrate",
                "python-modules": ["airflow_provider_d6.hooks.d6"],
            }
        ],
        "operators": [
            {
                "integration-name": "d6+ Integrate",
                "python-modules": [
                    "airflow_provider_d6.operators.client_integrations",
                    "airflow_provider_d6.operators.storage",
                    "airflow_provider_d6.operators.debtor_notes",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "d6+ Integrate",
                "python-modules": ["airflow_provider_d6.sensors.client_integrations"],
            }
        ],
        "triggers": [
            {
                "integration-name": "d6+ Integrate",
                "python-modules": ["airflow_provider_d6.triggers.client_integrations"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "d6",
                "hook-class-name": "airflow_provider_d6.hooks.d6.D6Hook",
                "hook-name": "d6+ Integrate",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Integrator username",
                        "password": "Integrator password",
                    },
                    "placeholders": {
                        "host": "https://integrate.d6plus.co.za/api",
                        "login": "username issued by d6",
                        "password": "password issued by d6",
                    },
                },
                "conn-fields": {
                    # The numeric bounds match the hook's (hooks/_config.py RANGES).
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Seconds to wait for each d6 response, all of it, "
                        "headers and body (default 30, at most 3600).",
                        "schema": {
                            "type": ["number", "null"],
                            "exclusiveMinimum": 0,
                            "maximum": 3600,
                        },
                    },
                    "max_attempts": {
                        "label": "Attempts in total",
                        "description": "Attempts per request, the first included, for transient "
                        "failures: 429, 5xx, connection errors (default 5; 1 = never retry; at "
                        "most 20). Formerly max_retries, which is still read with the same "
                        "meaning.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 20},
                    },
                    "requests_per_second": {
                        "label": "Requests per second",
                        "description": "Client-side throttle per task (at most 10000). Empty: "
                        "adaptive (start fast, slow down on 429, recover slowly).",
                        "schema": {
                            "type": ["number", "null"],
                            "exclusiveMinimum": 0,
                            "maximum": 10000,
                        },
                    },
                    "shared_throttle": {
                        "label": "Shared throttle",
                        "description": "none (default): each task throttles itself. host: every "
                        "task on this machine using this d6 credential shares one throttle "
                        "through a file, so parallel tasks stay under d6's limit together.",
                        "schema": {"type": ["string", "null"], "enum": ["none", "host"]},
                    },
                    "activation_route": {
                        "label": "Activation route",
                        "description": "Route for Change Client Integration State: auto tries v2 and "
                        "falls back to v1 when d6 answers route_not_found.",
                        # An enum renders as a drop-down; "null" in the type keeps the field
                        # optional (empty means "auto" in the hook), and leaving None out of the
                        # enum keeps a "null" choice out of the list.
                        "schema": {"type": ["string", "null"], "enum": ["auto", "v2", "v1"]},
                    },
                    "max_response_bytes": {
                        "label": "Largest answer (bytes)",
                        "description": "The most one d6 answer may hold once decompressed "
                        "(default 33554432, 32 MiB; from 65536 to 1073741824). A larger answer "
                        "is refused while it is read, so that a broken or hostile server cannot "
                        "fill the worker's or the triggerer's memory.",
                        "schema": {
                            "type": ["integer", "null"],
                            "minimum": 65536,
                            "maximum": 1073741824,
                        },
                    },
                    "verify": {
                        "label": "TLS verification",
                        "description": "true (default), false, or the path of a CA bundle file. "
                        "false turns certificate checks off (private test setups only): every "
                        "task that uses the connection then logs a warning.",
                        # One text field (a union of types renders as a JSON editor); the hook
                        # reads "true"/"false" and paths alike.
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
