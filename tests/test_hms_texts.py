"""The official HMS texts, pure parts: the service's answer, lookup by model, description and action, our own texts
against the official table, and what a silent code does (nothing) to alarms and notifications."""

from __future__ import annotations

import json
import re

import pytest

from bambupi.notify.messages import message_for
from bambupi.panel.alarms import AlarmState, leds, on_event
from bambupi.printer import hms
from bambupi.printer.events import events
from bambupi.printer.hms_texts import (
    MAX_ANSWER_BYTES,
    TableError,
    UpToDate,
    lookup,
    parse_service_answer,
    shipped_catalog,
    split_action,
)
from tests.hms_service import service_data


def test_the_services_answer_is_read_in_the_asked_language() -> None:
    catalog = parse_service_answer(json.dumps(service_data("de", version=7)).encode(), "de")
    assert not isinstance(catalog, UpToDate)
    assert catalog.version == 7
    found = lookup((catalog,), "0700_2000_0002_0001", "P1S")
    assert found is not None
    assert (found.description, found.action) == (
        "AMS A Slot 1 Filament ist aufgebraucht.", "Bitte legen Sie ein neues Filament ein.")
    assert parse_service_answer(b'{"result": 201}', "de") == UpToDate()


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"<html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"result": 3}', "result"),
        (b'{"result": 0, "ver": "x", "data": {}}', "'ver'"),
        (b'{"result": 0, "ver": 1, "data": []}', "'data'"),
        (b'{"result": 0, "ver": 1, "data": {"device_hms": {"fr": []}}}', "no texts in 'de'"),
        (b'{"result": 0, "ver": 1, "data": {"device_hms": {"de": []}}}', "no HMS texts"),
        (b'{"result": 0, "ver": 1, "data": {"device_hms": {"de": [{"ecode": "12", "intro": "x"}]}}}', "no HMS texts"),
        (b"[" * 100_000, "not JSON"),
        (b" " * (MAX_ANSWER_BYTES + 1), "larger"),
    ],
    ids=["html", "list", "result", "ver", "data", "language", "empty", "bad codes", "deep", "huge"],
)
def test_a_wrong_answer_is_refused_saying_why(body: bytes, reason: str) -> None:
    with pytest.raises(TableError, match=re.escape(reason)):
        parse_service_answer(body, "de")


@pytest.mark.parametrize(
    "text,language,description,action",
    [
        ("AMS F has detected a breakage. Please check the PTFE tubes.", "en",
         "AMS F has detected a breakage.", "Please check the PTFE tubes."),
        ("AMS-HT H Slot 4 is empty; please insert a new filament.", "en",
         "AMS-HT H Slot 4 is empty.", "Please insert a new filament."),
        ("Please wait a moment.", "en", "Please wait a moment.", None),  # an instruction from its first word
        ("The front door is open.", "en", "The front door is open.", None),
        ("Die Düse ist verstopft. Bitte reinigen Sie die Düse.", "de", "Die Düse ist verstopft.",
         "Bitte reinigen Sie die Düse."),
        ("Der Sensor ist defekt. Wenden Sie sich an den Kundendienst.", "de", "Der Sensor ist defekt.",
         "Wenden Sie sich an den Kundendienst."),
        ("La certification a échoué. Veuillez reconnecter le câble.", "fr", "La certification a échoué.",
         "Veuillez reconnecter le câble."),
        ("フィラメントのロードに失敗しました。もう一度お試しください。", "ja", "フィラメントのロードに失敗しました。",
         "もう一度お試しください。"),
        ("AMS-HT B 通信异常，请拔插模块连接线或重启打印机。", "zh-cn", "AMS-HT B 通信异常。",
         "请拔插模块连接线或重启打印机。"),
        ("Impossibile. Si prega di riprovare.", "it", "Impossibile. Si prega di riprovare.", None),  # no rule: whole
    ],
)  # fmt: skip
def test_description_and_action(text: str, language: str, description: str, action: str | None) -> None:
    assert split_action(text, language) == (description, action)


def test_the_shipped_table_names_almost_every_code() -> None:
    # Before: 40 own texts, 9 AMS patterns and 21 print errors named ~14 % of the codes; now every code with an
    # official text does.
    catalog = shipped_catalog()
    named = [code for code, variants in catalog.hms.items() if any(v.text for v in variants)]
    assert len(catalog.hms) > 4900 and len(catalog.errors) > 900
    assert len(named) / len(catalog.hms) > 0.98


# -- our own texts agree with the official ones -------------------------------------------------------------------


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _disagrees(own: str, official: str) -> list[str]:
    """Our words (4+ letters, by their first 5) that the official text does not use: another thing named."""
    words = _letters(official)
    return [w for w in re.findall(r"[A-Za-z]{4,}", own) if _letters(w)[:5] not in words]


def test_every_own_text_agrees_with_the_official_table_for_every_model() -> None:
    catalog = shipped_catalog()
    problems = []
    for table, own_texts in ((catalog.hms, hms._DESCRIPTIONS), (catalog.errors, hms._PRINT_ERRORS)):
        for code, own in own_texts.items():
            variants = table.get(code.replace("_", ""))
            if not variants:
                problems.append(f"{code}: not in the official table")
            for variant in variants or ():
                if _disagrees(own, variant.text):
                    problems.append(f"{code} {sorted(variant.models)}: {own!r} vs {variant.text!r}")
    for (group, code), (own, modules) in hms._AMS_SLOT_TEXTS.items():
        for module in modules:
            for unit in range(4 if module != 0x12 else 1):  # one AMS lite
                for slot in range(4):
                    key = f"{module:02X}{unit:02X}{group + slot:02X}00{code:08X}"
                    variants = catalog.hms.get(key)
                    if not variants:
                        problems.append(f"{key}: not in the official table")
                    for variant in variants or ():
                        if _disagrees(own, variant.text):
                            problems.append(f"{key}: {own!r} vs {variant.text!r}")
    assert problems == []


def test_the_check_catches_the_texts_that_were_wrong() -> None:
    # What the old texts said (issue 15): the check above would have failed on each.
    assert _disagrees("filament may be broken in the PTFE tube", "AMS A Slot 1's filament may be broken in AMS.")
    assert _disagrees("Not enough space on the SD card",
                      "Not enough space on the USB flash drive. Video recording and timelapse recording cannot be "
                      "performed. Please clear some space.")
    assert "0C00010000010009" not in shipped_catalog().hms  # "Chamber camera dirty" named no official code


# -- silent codes raise nothing -----------------------------------------------------------------------------------


def _printer(*entries: dict[str, object]) -> dict[str, object]:
    return {"id": "p", "connection": "online", "last_report_at": 1.0, "state": {"hms": list(entries)}}


def test_a_placeholder_code_lights_nothing_sounds_nothing_and_sends_nothing() -> None:
    silent = hms.decode_hms(0x0500_0100, 0x0001_000A, "X1C").to_json(standing=False)
    assert silent["severity"] == "fatal" and silent["silent"] is True
    raised = events(_printer(), _printer(silent))
    assert [e["kind"] for e in raised] == ["hms_raised"] and raised[0]["hms"]["silent"] is True
    assert message_for(raised[0], "Garage") is None
    assert on_event(AlarmState(), raised[0], 0.0, quiet=False) == (AlarmState(), None)
    lights = leds({"p": _printer(silent)}, AlarmState(), 0.0, grace_s=60.0)
    assert (lights["red"].mode, lights["amber"].mode) == ("off", "off")
    # The same code with a text would have: the check is on silent, not on the severity.
    loud = {**silent, "silent": False}
    assert leds({"p": _printer(loud)}, AlarmState(), 0.0, grace_s=60.0)["red"].mode == "blink"


def test_an_hms_notification_carries_the_description_and_the_action_on_a_new_line() -> None:
    entry = hms.decode_hms(0x0700_2000, 0x0002_0001, "P1S").to_json(standing=False)
    raised = events(_printer(), _printer(entry))[0]
    message = message_for(raised, "Garage")
    assert message is not None
    assert message.title == "Garage: AMS A Slot 1 filament has run out."
    assert message.body == "serious error 0700_2000_0002_0001\nPlease insert a new filament."


def test_a_failed_print_notification_carries_the_action() -> None:
    event = {"kind": "job_failed", "printer": "p", "job": "benchy", "print_error": "0300_8004",
             "result": "Failed: Filament ran out.", "action": "Please load new filament.", "at": 100.0}
    message = message_for(event, "Garage", started_at=40.0)
    assert message is not None
    assert message.title == "Garage: benchy — Failed: Filament ran out."
    assert message.body == "Took 1 min.\nPlease load new filament."
