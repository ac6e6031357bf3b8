"""Break a copy of the provider on purpose, to prove the deployment test catches it.

Only a copy under the run folder is changed, never the checkout: the copy is put first on
PYTHONPATH of the chosen components, where it shadows the editable install.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_provider_d6"


@dataclass(frozen=True)
class Breakage:
    """One way to break the provider, and where the broken copy is installed."""

    description: str
    module: str
    appended_code: str
    worker_only: bool
    evidence: str  # what the failure report must quote for the breakage to count as caught


BREAKAGES: dict[str, Breakage] = {
    "hook-import": Breakage(
        description="the d6 hook fails to import on the Celery worker, as when a dependency is "
        "missing on that machine",
        module="hooks/d6.py",
        appended_code="\nimport d6_e2e_dependency_missing_on_this_worker  # noqa: E402,F401\n",
        worker_only=True,
        evidence="No module named 'd6_e2e_dependency_missing_on_this_worker'",
    ),
    "trigger-serialize": Breakage(
        description="the trigger's serialize() puts a requests.Session into its kwargs",
        module="triggers/client_integrations.py",
        appended_code="""

_d6_e2e_serialize = ClientIntegrationTrigger.serialize


def _d6_e2e_unserializable(self):
    import requests

    classpath, kwargs = _d6_e2e_serialize(self)
    return classpath, {**kwargs, "session": requests.Session()}


ClientIntegrationTrigger.serialize = _d6_e2e_unserializable
""",
        worker_only=False,
        evidence="Cannot serialize object of type <class 'requests.sessions.Session'>",
    ),
}


def make_broken_copy(name: str, dest: Path) -> Path:
    """Copy the provider package under ``dest`` with one breakage applied; return the folder to
    put on PYTHONPATH.

    :param name: a key of :data:`BREAKAGES`
    :param dest: an empty folder of the run
    """
    breakage = BREAKAGES[name]
    target = dest / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    module = target / breakage.module
    module.write_text(module.read_text() + breakage.appended_code)
    return dest
