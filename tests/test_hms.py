"""HMS decoding: code text, severity, module, our short descriptions, support links; print_error helpers."""

from __future__ import annotations

import pytest

from bambupi.printer.hms import (
    COMMAND_VERIFICATION_FAILED,
    SEVERITIES,
    WIKI_HMS_HOME,
    PrintError,
    decode_hms,
    describe_print_error,
    format_print_error,
    hms_code,
    hms_url,
    print_error_description,
    severity_of,
)


@pytest.mark.parametrize(
    "attr,code,text",
    [
        (0x0300_1200, 0x0002_0001, "0300_1200_0002_0001"),
        (50331904, 65543, "0300_0100_0001_0007"),  # the example in ha-bambulab's comments
        (0x0C00_0300, 0x0003_000B, "0C00_0300_0003_000B"),
        (0x0500_0500, 0x0001_0007, COMMAND_VERIFICATION_FAILED),
        (0xFFFF_FFFF, 0xFFFF_FFFF, "FFFF_FFFF_FFFF_FFFF"),
        (1, 1, "0000_0001_0000_0001"),
    ],
)
def test_hms_code(attr: int, code: int, text: str) -> None:
    assert hms_code(attr, code) == text
    assert decode_hms(attr, code, "P1S").code == text


@pytest.mark.parametrize(
    "code,severity",
    [
        (0x0001_0007, "fatal"),
        (0x0002_0001, "serious"),
        (0x0003_0008, "common"),
        (0x0004_0001, "info"),
        (0x0000_0001, "unknown"),
        (0x0005_0001, "unknown"),
        (0xFFFF_0001, "unknown"),
    ],
)
def test_severity_follows_bambustudio(code: int, severity: str) -> None:
    assert severity_of(code) == severity
    assert decode_hms(0x0300_0100, code, "X1C").severity == severity
    assert severity in SEVERITIES


@pytest.mark.parametrize(
    "attr,module",
    [
        (0x0300_0100, "Motion controller"),
        (0x0500_0100, "Mainboard"),
        (0x0700_2000, "AMS"),
        (0x0800_0100, "Toolhead"),
        (0x0C00_0300, "Camera/AI"),
        (0x1200_2000, "AMS lite"),
        (0x1880_2000, "AMS HT"),
        (0x4200_0000, "Module 0x42"),
    ],
)
def test_module(attr: int, module: str) -> None:
    assert decode_hms(attr, 0x0002_0001, "P1S").module == module


@pytest.mark.parametrize(
    "attr,code,model,description,action",
    [
        # Bambu's official English texts (the shipped table), split into what happened and what to do
        (0x0300_1200, 0x0002_0001, "X1C", "The front cover of the toolhead fell off.", None),
        (0x0300_0200, 0x0001_0006, "X1C", "The nozzle temperature is abnormal; the sensor may have a short circuit.",
         "Please check whether the connector is properly plugged in."),
        # the model's own variant: the H2D has two nozzles
        (0x0300_0200, 0x0001_0006, "H2D",
         "The right nozzle temperature is abnormal; the sensor may have a short circuit.",
         "Please check whether the connector is properly plugged in."),
        (0x0500_0100, 0x0003_0004, "X1C",
         "Not enough space on MicroSD Card. Video recording and timelapse recording cannot be performed.",
         "Please clear some space."),
        (0x0500_0100, 0x0003_0004, "P2S",
         "Not enough space on the USB flash drive. Video recording and timelapse recording cannot be performed.",
         "Please clear some space."),
        (0x0700_2000, 0x0002_0003, "X1C", "AMS A Slot 1's filament may be broken in AMS.", None),
        (0x0701_2300, 0x0002_0001, "P1S", "AMS B Slot 4 filament has run out.", "Please insert a new filament."),
        (0x1200_8000, 0x0002_0001, "A1", "AMS Lite A slot 1 filament may be tangled or stuck.", None),
        # not in the official table: a generic text from module and severity
        (0x0800_0100, 0x0002_0099, "X1C", "Toolhead: serious error", None),
        (0x0300_F900, 0x0001_0001, "X1C", "Motion controller: fatal error", None),
        (0x0500_9900, 0x0003_0001, "X1C", "Mainboard: error", None),
        (0x0C00_9900, 0x0004_0001, "X1C", "Camera/AI: notice", None),
        (0x0700_2000, 0x0009_0001, "X1C", "AMS: problem", None),
    ],
)  # fmt: skip
def test_description(attr: int, code: int, model: str, description: str, action: str | None) -> None:
    entry = decode_hms(attr, code, model)
    assert (entry.description, entry.action, entry.silent) == (description, action, False)


def test_a_placeholder_code_is_silent() -> None:
    # 0500_0100_0001_000A is listed in Bambu's table without a text: shown, never an alarm.
    placeholder = decode_hms(0x0500_0100, 0x0001_000A, "X1C")
    assert placeholder.silent is True
    assert placeholder.action is None
    assert placeholder.description == "Mainboard: code without an official text"
    assert placeholder.severity == "fatal"  # its severity stays; only the alarm is off


# Only articles the published HMS index lists (tests/test_captures_links.py checks every code against it): it has
# one page for AMS A slot 1 running out, under /en/x1/, for every model; no /en/p1/ pages at all.
@pytest.mark.parametrize(
    "model,attr,code,url",
    [
        ("X1C", 0x0700_2000, 0x0002_0001, "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        ("P1S", 0x0700_2000, 0x0002_0001, "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        ("a1 mini", 0x0700_2000, 0x0002_0001,
         "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        ("H2D", 0x0700_2000, 0x0002_0001, "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        ("Mystery 9000", 0x0700_2000, 0x0002_0001,
         "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        # A model's own article where the index names one: H2D's under /en/h2/, an A1 mini's under /en/a1-mini/.
        ("H2D", 0x0300_0200, 0x0001_0001, "https://wiki.bambulab.com/en/h2/troubleshooting/hmscode/0300_0200_0001_0001"),
        ("A1 mini", 0x0300_1A00, 0x0002_0001,
         "https://wiki.bambulab.com/en/a1-mini/troubleshooting/hmscode/0300_1A00_0002_0001"),
        # AMS B slot 2: the index lists it on AMS A slot 1's page.
        ("P1S", 0x0701_2100, 0x0002_0001, "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0700_2000_0002_0001"),
        # No article for the code: the HMS index.
        ("X2D", 0x0500_0600, 0x0002_0070, WIKI_HMS_HOME),
        ("P1S", 0x0300_9900, 0x0001_0001, WIKI_HMS_HOME),
    ],
)  # fmt: skip
def test_url(model: str, attr: int, code: int, url: str) -> None:
    assert hms_url(hms_code(attr, code), model) == url
    assert decode_hms(attr, code, model).url == url


def test_entry_to_json() -> None:
    entry = decode_hms(0x0C00_0300, 0x0003_0008, "P1S").to_json(standing=True)
    assert entry == {
        "code": "0C00_0300_0003_0008",
        "severity": "common",
        "module": "Camera/AI",
        "description": "A possible spaghetti failure has been detected.",
        "action": "Please check the print quality and decide whether to stop the job. Cleaning the build plate or "
                  "drying the filament can effectively reduce the risk of spaghetti failure.",
        "url": "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0C00_0300_0003_0008",
        "standing": True,
        "silent": False,
    }


@pytest.mark.parametrize(
    "value,text",
    [(0, None), (0x0300_400C, "0300_400C"), (50348044, "0300_400C"), (1, "0000_0001"), (0xFFFF_FFFF, "FFFF_FFFF")],
)
def test_format_print_error(value: int, text: str | None) -> None:
    assert format_print_error(value) == text


@pytest.mark.parametrize(
    "code,description",
    [
        ("0300_400C", "The task was canceled"),
        ("0300_400c", "The task was canceled"),
        ("0300_8004", "Filament ran out"),
        ("0500_400E", "Printing was cancelled"),
        ("0300_4FFF", None),
    ],
)
def test_print_error_description(code: str, description: str | None) -> None:
    assert print_error_description(code) == description


@pytest.mark.parametrize(
    "code,model,text,action",
    [
        ("0300_8009", "X1C", "Heatbed temperature malfunction", None),
        ("0300_8004", "P1S", "Filament ran out.", "Please load new filament."),
        ("0300_8004", "", "Filament ran out.", "Please load new filament."),
        ("0300_4FFF", "X1C", "Motion controller error 0300_4FFF", None),
        ("zz", "X1C", "Error zz", None),
    ],
)
def test_print_errors_get_the_official_text_and_action(code: str, model: str, text: str, action: str | None) -> None:
    assert describe_print_error(code, model) == PrintError(text, action)
