"""The browser half of the deployment test: headless Chromium driven through the Airflow UI."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from e2e.harness import E2EFailure, step

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SCRIPT = Path(__file__).resolve().parent / "install_browser.sh"
# Debian's Chromium as root, on a machine whose outside network is closed: no sandbox, and none of
# the background connections that would otherwise be refused by the dozen at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


def ensure_chromium() -> Path:
    """Return the Chromium binary, installing Debian's package first when it is missing."""
    if not CHROMIUM.exists():
        step(f"{CHROMIUM} is missing: running {INSTALL_SCRIPT.name}")
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False)
        if result.returncode != 0 or not CHROMIUM.exists():
            raise E2EFailure(
                "could not install Chromium",
                hint="run `apt-get install -y chromium` as root, or pass --skip-browser",
            )
    return CHROMIUM


@dataclass
class ConnectionFormSpec:
    """What the d6 connection form must show, and the values saved through it."""

    connection_id: str
    type_label: str
    relabelled: dict[str, str]  # standard field name -> label the form must show
    hidden: list[str]  # standard field names the form must not show
    extra_fields: dict[str, str]  # extra field name -> label the form must show
    values: dict[str, str]  # standard and extra field name -> value to type


@dataclass
class TriggerFormSpec:
    """What the trigger form of a DAG must show, and the run to start from it."""

    dag_id: str
    params: list[str]
    dropdown_param: str
    dropdown_label: str
    dropdown_options: list[str]
    dropdown_choice: str
    values: dict[str, str] = field(default_factory=dict)


class UI:
    """One logged-in browser page on the Airflow UI, taking a screenshot at every step.

    :param page: a Playwright page
    :param base_url: the api-server URL
    :param artifacts: the folder for screenshots
    """

    def __init__(self, page: Any, base_url: str, artifacts: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.artifacts = artifacts
        self.screenshots: list[Path] = []

    def shot(self, name: str) -> Path:
        """Save a screenshot of the whole page.

        :param name: file stem, numbered in order of the steps
        """
        path = self.artifacts / f"{len(self.screenshots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        return path

    def login(self, username: str, password: str) -> None:
        """Sign in through SimpleAuthManager's login page.

        :param username: a configured user
        :param password: its password
        """
        page = self.page
        page.goto(f"{self.base_url}/auth/login", wait_until="networkidle")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        self.shot("login")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=TIMEOUT_MS)
        page.get_by_role("link", name=re.compile("Dags", re.IGNORECASE)).first.wait_for(
            timeout=TIMEOUT_MS
        )
        self.shot("home")

    def check_connection_form(self, spec: ConnectionFormSpec) -> None:
        """Open the new-connection form, choose the d6 type, check its fields, and save it.

        :param spec: expected labels and the values to save
        """
        page = self.page
        page.goto(f"{self.base_url}/connections", wait_until="networkidle")
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("input[name=connection_id]").fill(spec.connection_id)
        combo = dialog.get_by_role("combobox")
        combo.click()
        combo.fill("d6")
        option = page.get_by_role("option", name=spec.type_label, exact=True)
        _require(option.count() == 1, f"connection type {spec.type_label!r} offered in the form")
        option.click()
        for name, label in spec.relabelled.items():
            field_input = dialog.locator(f"[name={name}]")
            _require(field_input.is_visible(), f"standard field {name!r} shown")
            _require(dialog.get_by_text(label, exact=True).is_visible(), f"label {label!r} shown")
        for name in spec.hidden:
            _require(dialog.locator(f"[name={name}]").count() == 0, f"field {name!r} hidden")
        for name in ("host", "login", "password"):
            dialog.locator(f"[name={name}]").fill(spec.values[name])
        self.shot("connection-form-d6")
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for name, label in spec.extra_fields.items():
            _require(
                dialog.get_by_text(label, exact=True).is_visible(), f"extra field {label!r} shown"
            )
            _require(_form_field(dialog, name).count() >= 1, f"input of {name!r}")
        for name, value in spec.values.items():
            if name not in ("host", "login", "password"):
                dialog.locator(f"[name=element_{name}]").fill(value)
        self.shot("connection-form-extra-fields")
        dialog.get_by_role("button", name="Save").click()
        row = page.get_by_role("row").filter(has_text=spec.connection_id)
        row.first.wait_for(timeout=TIMEOUT_MS)
        # The list's Test button is not used: Airflow 3.3.2's UI sends port 0 for a connection
        # without a port, and the api-server refuses that as "host or port differs" (HTTP 400) for
        # every such type. The runner tests the stored connection through the REST API instead.
        self.shot("connection-saved")

    def trigger_from_form(self, spec: TriggerFormSpec) -> str:
        """Open a DAG's trigger form, check its fields and drop-down, trigger; return the run id.

        :param spec: expected fields and the values to submit
        """
        page = self.page
        page.goto(f"{self.base_url}/dags/{spec.dag_id}", wait_until="networkidle")
        page.get_by_role("button", name="Trigger Dag").click()
        dialog = page.get_by_role("dialog")
        # Airflow 3.1's submit button has no test id: it is the dialog's "Trigger" button.
        submit = (
            dialog.get_by_test_id("trigger-dag-submit")
            .or_(dialog.get_by_role("button", name="Trigger", exact=True))
            .first
        )
        submit.wait_for(timeout=TIMEOUT_MS)
        for param in spec.params:
            _require(_form_field(dialog, param).count() >= 1, f"form field {param!r}")
        for param, value in spec.values.items():
            dialog.locator(f"[name=element_{param}]").fill(value)
        self.shot("trigger-form")
        # The label of a required field ends with an asterisk: match its beginning.
        # Airflow 3.1's drop-down is not labelled that way: its button sits in the field's root.
        dropdown = (
            dialog.get_by_label(re.compile(rf"^{re.escape(spec.dropdown_label)}\b"))
            .or_(dialog.locator(f"[id='select:element_{spec.dropdown_param}'] [role=combobox]"))
            .first
        )
        dropdown.click()
        options = [o.inner_text().strip() for o in page.get_by_role("option").all()]
        _require(
            options == spec.dropdown_options,
            f"drop-down {spec.dropdown_label!r} offers {spec.dropdown_options} (it offers {options})",
        )
        self.shot("trigger-form-dropdown")
        page.get_by_role("option", name=spec.dropdown_choice, exact=True).click()
        self.shot("trigger-form-filled")
        submit.click()
        page.wait_for_url(re.compile(rf"/dags/{re.escape(spec.dag_id)}/runs/"), timeout=TIMEOUT_MS)
        page.get_by_text("Dag run has been successfully triggered").first.wait_for(
            timeout=TIMEOUT_MS
        )
        self.shot("run-started")
        return unquote(page.url.rsplit("/runs/", 1)[1].split("?")[0].strip("/"))

    def show_run(self, dag_id: str, run_id: str) -> None:
        """Reload a run's page and take a screenshot of its task states.

        :param dag_id: the DAG
        :param run_id: the run
        """
        self.page.goto(f"{self.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
        self.page.wait_for_load_state("networkidle")
        self.shot("run-finished")


def _form_field(dialog: Any, name: str) -> Any:
    """Return the widget of a form field (an extra or a param) by the name the form gives it.

    A select keeps its value in a hidden input; every other widget is the input itself.
    Airflow 3.1's drop-down has no input: only its root's id names the field.
    """
    return dialog.locator(f"[name=element_{name}], [id='select:element_{name}']")


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise E2EFailure(f"UI check failed: {what}", hint="see the screenshots in e2e/artifacts/")


@contextmanager
def open_ui(base_url: str, artifacts: Path) -> Iterator[UI]:
    """Start headless Chromium and yield a :class:`UI` on a fresh page.

    :param base_url: the api-server URL
    :param artifacts: the folder for screenshots
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(ensure_chromium()), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            ui = UI(page, base_url, artifacts)
            try:
                yield ui
            except Exception:
                # The page as it was when a check failed is the most useful picture of all.
                try:
                    ui.shot("failure")
                except Exception as exc:  # noqa: BLE001 - the original error matters more
                    step(f"could not take the failure screenshot: {exc}")
                raise
        finally:
            browser.close()
