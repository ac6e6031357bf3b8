"""Turn the logs of a failed deployment test into a sentence that names the likely cause."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

INSTALL_EVERYWHERE = (
    "install airflow-provider-d6 and its dependencies on every Airflow component "
    "(scheduler, dag-processor, triggerer, api-server and every Celery worker)"
)


@dataclass(frozen=True)
class Signature:
    """A log pattern and the cause it points at."""

    pattern: re.Pattern[str]
    cause: str


# Most specific first: the first signature that matches a source names its cause.
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        re.compile(
            r"Cannot serialize object of type <[^>\n]*>|is not JSON serializable|"
            r"[Ff]ailed to serialize trigger[^\n]*"
        ),
        "a trigger's serialize() returned kwargs Airflow cannot store: the task could not defer. "
        "Trigger kwargs must be JSON-safe (ints, strings, lists, dicts), never hooks or sessions",
    ),
    Signature(
        re.compile(r"Error when importing hook[^\n]*"),
        "the d6 hook failed to import in the api-server (connection form and test); "
        + INSTALL_EVERYWHERE,
    ),
    Signature(
        re.compile(r"No module named '[^']+'|cannot import name [^\n]*|ImportError: [^\n]*"),
        "a module failed to import (the provider or something it needs) where this log was "
        "written; " + INSTALL_EVERYWHERE,
    ),
    Signature(
        re.compile(r"Dag not found during start up[^\n]*|Error loading DAG from [^\n]*"),
        "the worker could not load the DAG file that the dag-processor parsed: the worker's Python "
        "environment differs; " + INSTALL_EVERYWHERE,
    ),
    Signature(
        re.compile(r"Trigger [^\n]*(?:failed|crashed|exited)[^\n]*|TriggerFailure[^\n]*"),
        "the trigger failed inside the triggerer; its log shows the traceback",
    ),
    Signature(
        re.compile(r"(?:ConnectError|Connection refused)[^\n]*execution[^\n]*"),
        "tasks cannot reach the execution API: [core] execution_api_server_url must point at the "
        "api-server",
    ),
    Signature(
        re.compile(r"D6AuthenticationError[^\n]*"),
        "d6 refused the connection's credentials: check the d6_default login and password",
    ),
    Signature(
        re.compile(r"D6(?:Connection|Server|RateLimit)Error[^\n]*"),
        "the d6 API (sandbox) failed or was unreachable from the worker",
    ),
)


def diagnose(sources: Mapping[str, str]) -> list[str]:
    """Return one line per source whose text matches a known failure, naming the cause.

    :param sources: label (a component, or a task's log) → its text
    """
    findings = []
    for label, text in sources.items():
        for signature in SIGNATURES:
            match = signature.pattern.search(text)
            if match:
                evidence = match.group(0).strip()[:300]
                findings.append(f"{label}: {signature.cause}\n    evidence: {evidence}")
                break
    return findings


def find_leaks(secret: str, sources: Mapping[str, str]) -> list[str]:
    """Return the labels of the sources whose text contains ``secret``.

    :param secret: a credential that must never be written anywhere
    :param sources: label → text
    """
    if len(secret) < 5:
        raise ValueError("a secret shorter than 5 characters cannot be told apart from noise")
    return [label for label, text in sources.items() if secret in text]
