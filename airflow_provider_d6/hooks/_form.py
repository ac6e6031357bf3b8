"""The d6 connection form for Airflow 3.1, built from the provider info's declaration.

Airflow 3.2+ renders the form from ``get_provider_info()``'s ``ui-field-behaviour`` and
``conn-fields`` without importing the hook. Airflow 3.1 knows neither key: it asks the hook class
for ``get_ui_field_behaviour`` and ``get_connection_form_widgets`` (WTForms fields, which its
api-server stands in for when Flask-AppBuilder is not installed). ``D6Hook`` answers those from the
same declaration, so the form is the same on every version and is declared once.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_d6.get_provider_info import get_provider_info


def _declaration() -> dict[str, Any]:
    (d6,) = (
        entry
        for entry in get_provider_info()["connection-types"]
        if entry["connection-type"] == "d6"
    )
    declaration: dict[str, Any] = d6
    return declaration


def ui_field_behaviour() -> dict[str, Any]:
    """Return the standard fields' behaviour in ``get_ui_field_behaviour``'s shape."""
    behaviour = _declaration()["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Return the extra fields as WTForms fields, for Airflow 3.1's connection form.

    3.1's form has no number field and no bounds: integers stay integers, numbers are entered as
    text (the hook reads "20" and 20 alike), and the hook checks every range when it reads the
    connection.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, field in _declaration()["conn-fields"].items():
        schema = field["schema"]
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        validators: list[Any] = [Optional()]
        if "enum" in schema:
            validators.append(any_of(list(schema["enum"])))
        field_class = IntegerField if "integer" in types else StringField
        widgets[name] = field_class(
            lazy_gettext(field["label"]),
            widget=BS3TextFieldWidget(),
            description=field["description"],
            validators=validators,
        )
    return widgets
