"""A production install of the provider carries only the provider.

The wheel is built from a copy of the source tree exactly as a release would be, then opened: no
sandbox code, no example DAGs, no ``d6-sandbox`` command, and none of the sandbox's or the
examples' dependencies among its unconditional requirements.
"""

from __future__ import annotations

import ast
import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_d6"
# Needed only by the sandbox (cryptography: its TLS) or by the example DAGs (pyyaml, pendulum).
NOT_REQUIRED = {"cryptography", "pyyaml", "pendulum", "d6-sandbox"}
_UNCOPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".airflow",
    ".hypothesis",
    ".ruff_cache",
    ".mypy_cache",
    "artifacts",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build the provider's wheel from a copy of the tree (the tree itself stays untouched)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_UNCOPIED)
    out = work / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("airflow_provider_d6-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


@pytest.mark.slow
def test_wheel_holds_only_the_provider_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert tops - dist_info == {"airflow_provider_d6"}, sorted(tops)
    assert "airflow_provider_d6/hooks/d6.py" in names
    assert "airflow_provider_d6/py.typed" in names
    assert not [n for n in names if "sandbox" in n.lower() or n.startswith("dags/")]


@pytest.mark.slow
def test_wheel_requires_neither_sandbox_nor_example_dependencies(wheel: zipfile.ZipFile) -> None:
    requirements = _metadata(wheel).get_all("Requires-Dist") or []
    unconditional = {
        re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in requirements
        if "extra ==" not in requirement
    }
    assert "apache-airflow" in unconditional
    assert not unconditional & NOT_REQUIRED, sorted(unconditional)
    examples = [r for r in requirements if 'extra == "examples"' in r]
    assert any(r.lower().startswith("pyyaml") for r in examples), requirements
    assert any(r.lower().startswith("pendulum") for r in examples), requirements


@pytest.mark.slow
def test_wheel_installs_no_sandbox_command(wheel: zipfile.ZipFile) -> None:
    entry_points = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points[0]).decode() if entry_points else ""
    assert "d6-sandbox" not in text and "d6_sandbox" not in text
    assert "apache_airflow_provider" in text  # the provider is still found by Airflow


def test_provider_source_never_imports_the_sandbox() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {module}"
                for module in modules
                if module.split(".")[0] == "d6_sandbox"
            ]
    assert not offenders


@pytest.mark.slow
def test_importing_every_provider_module_loads_no_sandbox_code() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import airflow_provider_d6 as package\n"
        "names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'd6_sandbox')\n"
        "print(len(names), loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    count = int(result.stdout.split()[0])
    assert count >= 15  # every hook, operator, sensor and trigger module was imported
