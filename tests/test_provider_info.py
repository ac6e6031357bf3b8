"""The provider's registration with Airflow: metadata, entry point, connection form, CLI."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import airflow_provider_d6
from airflow_provider_d6.get_provider_info import get_provider_info

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
HOOK_MODULE = "airflow_provider_d6.hooks.d6"
TRIGGER_MODULE = "airflow_provider_d6.triggers.client_integrations"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _airflow(*args: str) -> subprocess.CompletedProcess[str]:
    # The test environment (AIRFLOW_HOME, SQLite, no examples) is inherited from tests/conftest.py.
    return subprocess.run(
        [str(AIRFLOW_BIN), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        check=False,  # the caller asserts on the return code and shows stderr
    )


def _json_output(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    start = result.stdout.find("[")
    assert start >= 0, result.stdout[-3000:]
    return json.loads(result.stdout[start:])


@pytest.fixture(scope="module")
def provider_info() -> dict:
    return get_provider_info()


@pytest.fixture(scope="module")
def d6_connection_type(provider_info) -> dict:
    types = [t for t in provider_info["connection-types"] if t["connection-type"] == "d6"]
    assert len(types) == 1
    return types[0]


def test_provider_info_validates_against_airflows_own_schema(provider_info):
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(provider_info, schema)


def test_entry_point_and_package_name_match_the_installed_distribution(provider_info):
    entry_points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_d6.")
    ]
    assert len(entry_points) == 1
    entry_point = entry_points[0]
    assert entry_point.load() is get_provider_info
    distribution = entry_point.dist.name
    assert provider_info["package-name"] == _canonical(distribution) == "airflow-provider-d6"
    assert (
        provider_info["versions"][0]
        == importlib.metadata.version(distribution)
        == airflow_provider_d6.__version__
    )


def test_provider_info_module_imports_nothing_heavy():
    code = (
        "import sys, airflow_provider_d6.get_provider_info as m; m.get_provider_info(); "
        "print(sorted(k for k in sys.modules if k.split('.')[0] in "
        "('airflow', 'airflow_provider_d6', 'requests', 'aiohttp', 'pendulum')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout.replace("'", '"')) == [
        "airflow_provider_d6",
        "airflow_provider_d6.get_provider_info",
    ]


def test_d6_connection_form_hides_relabels_and_explains(d6_connection_type):
    assert d6_connection_type["hook-class-name"] == "airflow_provider_d6.hooks.d6.D6Hook"
    assert d6_connection_type["hook-name"] == "d6+ Integrate"
    behaviour = d6_connection_type["ui-field-behaviour"]
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    assert {"host", "login", "password"} <= set(behaviour["relabeling"])
    assert "url" in behaviour["relabeling"]["host"].lower()
    assert "username" in behaviour["relabeling"]["login"].lower()
    assert "password" in behaviour["relabeling"]["password"].lower()
    assert behaviour["placeholders"]["host"] == "https://integrate.d6plus.co.za/api"


def test_d6_connection_extras_are_declared_with_valid_json_schemas(d6_connection_type):
    fields = d6_connection_type["conn-fields"]
    assert {"timeout", "max_attempts", "requests_per_second", "activation_route"} <= set(fields)
    for name, spec in fields.items():
        assert spec["label"], name
        jsonschema.Draft7Validator.check_schema(spec["schema"])
    route = fields["activation_route"]["schema"]
    # The UI renders every enum value as a choice: exactly the three routes, no "null" entry.
    assert route["enum"] == ["auto", "v2", "v1"]
    # A union of non-null types renders as a JSON editor instead of one input.
    for name, spec in fields.items():
        types = spec["schema"]["type"]
        assert (
            len([t for t in ([types] if isinstance(types, str) else types) if t != "null"]) == 1
        ), name
    jsonschema.validate("v1", route)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("v3", route)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(0, fields["max_attempts"]["schema"])


def test_d6_connection_form_bounds_match_the_hook(d6_connection_type):
    from airflow_provider_d6.hooks._config import RANGES

    fields = d6_connection_type["conn-fields"]
    for name in ("timeout", "max_attempts", "requests_per_second", "max_response_bytes"):
        low, high, exclusive = RANGES[name]
        schema = fields[name]["schema"]
        assert schema["maximum"] == high, name
        assert schema["exclusiveMinimum" if exclusive else "minimum"] == low, name
        jsonschema.validate(high, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(high + 1, schema)


def test_d6_connection_form_says_verify_false_warns(d6_connection_type):
    description = d6_connection_type["conn-fields"]["verify"]["description"]
    assert "false" in description and "warning" in description


def test_every_listed_module_imports(provider_info):
    listed = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in provider_info.get(kind, [])
        for m in entry["python-modules"]
    ]
    assert listed
    for module in listed:  # a renamed or missing module fails here
        importlib.import_module(module)


def test_airflow_providers_list_shows_the_provider(provider_info):
    providers = _json_output(_airflow("providers", "list", "-o", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-d6"]
    assert len(ours) == 1
    assert ours[0]["version"] == provider_info["versions"][0]


def test_airflow_providers_hooks_shows_the_d6_type():
    result = _airflow("providers", "hooks", "-o", "json")
    assert "Error when importing hook" not in result.stdout + result.stderr
    hooks = _json_output(result)
    d6 = [h for h in hooks if h.get("connection_type") == "d6"]
    assert len(d6) == 1, hooks
    assert d6[0]["class"] == "airflow_provider_d6.hooks.d6.D6Hook"
    assert d6[0]["package_name"] == "airflow-provider-d6"


def test_airflow_providers_triggers_lists_our_trigger():
    triggers = _json_output(_airflow("providers", "triggers", "-o", "json"))
    ours = [t for t in triggers if t.get("package_name") == "airflow-provider-d6"]
    assert ours, triggers
    assert TRIGGER_MODULE in json.dumps(ours)


# What the api-server sends the UI's new-connection form, asked in a fresh interpreter as the
# api-server does (providers are discovered once per process, and 3.1 stands in for WTForms then).
_FORM_METADATA = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(d6,) = [h for h in HookMetaService.hook_meta_data() if h.connection_type == "d6"]
print(json.dumps(d6.model_dump(mode="json")))
"""


def test_the_connection_form_is_relabelled_and_has_the_extras_on_this_airflow(d6_connection_type):
    result = subprocess.run(
        [sys.executable, "-c", _FORM_METADATA],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    form = json.loads(result.stdout.strip().splitlines()[-1])
    standard = form["standard_fields"]
    relabeling = d6_connection_type["ui-field-behaviour"]["relabeling"]
    for field, label in relabeling.items():
        assert standard[field]["title"] == label
    assert standard["port"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True
    extras = form["extra_fields"] or {}
    assert sorted(extras) == sorted(d6_connection_type["conn-fields"])
    assert extras["activation_route"]["schema"]["enum"] == ["auto", "v2", "v1"]
    assert extras["max_attempts"]["schema"]["type"][0] == "integer"
    assert extras["timeout"]["schema"]["title"] == "Timeout (seconds)"
