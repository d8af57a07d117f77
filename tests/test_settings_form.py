"""The settings form's schema (issue 19): every key of the config schema has its words (bambupi/config/labels.py) and
the control its check calls for; only real secrets are masked (an ntfy server URL is an address, a Discord webhook
URL carries its token), and a hidden secret never becomes visible by a change of kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tomlkit

from bambupi.config.file import apply_settings, schema_view, settings_view
from bambupi.config.labels import LABELS, SECTIONS
from bambupi.config.schema import SCHEMA, Section
from bambupi.config.validators import NumberRange, valid_bool
from bambupi.secret import MASK


def sections() -> Iterator[tuple[str, Section]]:
    for name, section in SCHEMA.items():
        yield name, section
        for sub, table in section.tables.items():
            yield f"{name}.{sub}", table


def fields() -> Iterator[tuple[str, Section, str, dict[str, Any]]]:
    view = schema_view()
    for path, section in sections():
        spec = view[path.split(".")[0]]
        if "." in path:
            spec = spec["tables"][path.split(".")[1]]
        for key in section.options:
            yield path, section, key, spec["fields"][key]


def test_every_schema_key_has_a_label_and_help_and_every_label_names_a_key() -> None:
    keys = {f"{path}.{key}" for path, section in sections() for key in section.options}
    missing = sorted(k for k in keys if k not in LABELS or not LABELS[k].label.strip() or not LABELS[k].help.strip())
    assert missing == [], f"add these to bambupi/config/labels.py: {missing}"
    assert sorted(set(LABELS) - keys) == [], "labels for keys the schema does not have"
    assert set(SECTIONS) == {path for path, _ in sections()}
    assert all(s.title.strip() and s.help.strip() for s in SECTIONS.values())


def test_the_control_follows_the_check() -> None:
    for path, section, key, spec in fields():
        option = section.options[key]
        where = f"{path}.{key}"
        assert spec["label"] == LABELS[where].label and spec["help"] == LABELS[where].help
        if option.secret:
            assert spec["control"] == "password", where
        elif option.choices:
            assert spec["control"] == ("choices" if option.is_list else "choice"), where
        elif option.validator is valid_bool:
            assert spec["control"] == "switch", where
        elif isinstance(option.validator, NumberRange):
            assert spec["control"] == "number", where
            assert (spec["min"], spec["max"], spec["whole"]) == (
                option.validator.minimum, option.validator.maximum, option.validator.whole)
        if spec["control"] == "text":  # (a list's items that are digits are sent as numbers)
            # A text field sends text: a key whose check takes a number but refuses its digits needs "number".
            accepts = []
            for value in (1, "1", 90, "90", 8883, "8883"):
                try:
                    option.validator(value)
                    accepts.append(type(value))
                except (ValueError, TypeError):
                    pass
            assert not (int in accepts and str not in accepts), f"{where}: give it control='number' in labels.py"


def test_the_form_knows_units_defaults_and_the_order_of_sections() -> None:
    view = schema_view()
    assert list(view)[:2] == ["printer", "notify"]  # what a person sets up first
    assert view["alerts"]["fields"]["ending_soon_min"] == {
        "label": "Heads-up before a print ends", "help": LABELS["alerts.ending_soon_min"].help, "unit": "min",
        "advanced": False, "control": "number", "min": 0, "max": 600, "whole": False, "default": 5.0}
    assert view["alerts"]["fields"]["quiet_hours"]["control"] == "time_range"
    assert view["panel"]["fields"]["buzzer"]["default"] == "active"
    assert view["notify"]["fields"]["events"]["control"] == "choices"
    assert view["notify"]["fields"]["events"]["default"] == [
        "finished", "failed", "cancelled", "paused", "hms", "offline", "online", "power", "filament"]
    assert view["notify"]["choices"]["events"][-1] == "ending_soon"
    assert view["notify"]["kinds"]["ntfy"]["shown"] == ["url"] and view["notify"]["kinds"]["discord"]["shown"] == []
    assert "default" not in view["printer"]["fields"]["access_code"]  # a secret has no default to show
    assert view["printer"]["tables"]["plug"]["title"] == "Smart plug"
    assert "P1S" in view["printer"]["fields"]["model"]["suggestions"]  # offered; a newer model is still taken


CHANNELS = """\
[[notify]]
name = "phone"
kind = "ntfy"
topic = "garage"
url = "https://ntfy.example.org"
token = "tk_ntfy_secret"

[[notify]]
name = "team"
kind = "discord"
url = "https://discord.example/api/webhooks/1/the-webhook-token"
"""


def test_an_ntfy_server_is_shown_a_discord_webhook_url_is_not() -> None:
    phone, team = settings_view(tomlkit.parse(CHANNELS))["notify"]
    assert phone["url"] == "https://ntfy.example.org" and phone["token"] == MASK
    assert team["url"] == MASK


def test_a_kept_webhook_url_is_dropped_not_shown_when_the_kind_becomes_ntfy() -> None:
    document = tomlkit.parse(CHANNELS)
    phone, team = settings_view(document)["notify"]
    # As the page sends it: the URL field left empty (it was hidden), the kind changed.
    apply_settings(document, {"notify": [phone, {**team, "kind": "ntfy", "url": None, "topic": "team"}]})
    assert "the-webhook-token" not in tomlkit.dumps(document)
    assert settings_view(document)["notify"][1]["url"] is None  # ntfy's default server


def test_an_ntfy_server_emptied_or_changed_is_a_new_destination_for_its_token() -> None:
    for url in (None, "https://elsewhere.example"):
        document = tomlkit.parse(CHANNELS)
        phone, team = settings_view(document)["notify"]
        with pytest.raises(ValueError, match=r"notify\[0\]\.token: type the token again: the channel's URL changed"):
            apply_settings(document, {"notify": [{**phone, "url": url}, team]})
        apply_settings(document, {"notify": [{**phone, "url": url, "token": "tk_typed_again"}, team]})
        assert document["notify"][0].get("url") == url and document["notify"][0]["token"] == "tk_typed_again"


def test_a_section_left_at_its_defaults_adds_no_empty_table() -> None:
    # The form sends every section with each key as the file has it (absent: null).
    document = tomlkit.parse('# mine\n[web]\nlisten = "0.0.0.0:8080"\n')
    apply_settings(document, {"web": {"listen": "0.0.0.0:8080", "session_hours": None},
                              "bridge": {"enabled": None, "host": None}, "alerts": {"ending_soon_min": 7}})
    assert tomlkit.dumps(document) == '# mine\n[web]\nlisten = "0.0.0.0:8080"\n\n[alerts]\nending_soon_min = 7\n'
