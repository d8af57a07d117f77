"""Writes tests/fixtures/hms_service.json: a few codes of Bambu's official HMS and print-error tables in English,
German and Japanese, in the HMS service's query.php shape, for the local stand-in (tests/hms_service.py).

Source: greghesp/ha-bambulab, custom_components/bambu_lab/pybambu/hms_error_text/hms_{en,de,ja}.json.gz at the commit
in tests/fixtures/hms_service.source.toml. Run: ``python -m tests.make_hms_fixture <ha-bambulab checkout or bare
repository>``. The texts are the ones meant for every model (the service answers per device type with one text a code).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

COMMIT = "809391e72abc0f9f25fbd3f3c15b866e67e356c5"
TABLES = "custom_components/bambu_lab/pybambu/hms_error_text/hms_{}.json.gz"
OUT = Path(__file__).parent / "fixtures" / "hms_service.json"
# One code per module and severity the tests use, a placeholder, and print errors. The published table lists no
# toolhead (08) code and no info (4) severity: they are named by module and severity (hms.decode_hms).
HMS_CODES = (
    "0300120000020001",  # 03 motion, serious: toolhead front cover
    "0300020000010006",  # 03 motion, fatal, with an action
    "0500010000030004",  # 05 mainboard, common: storage full
    "0500040000010001",  # 05 mainboard, fatal: download failed
    "0700200000020001",  # 07 AMS, serious: slot 1 ran out
    "0700600000020001",  # 07 AMS, serious: overloaded
    "0C00030000030008",  # 0C camera/AI, common: spaghetti
    "0C00030000030006",  # 0C camera/AI, common: purged filament piled up
    "1200200000020001",  # 12 AMS lite, serious
    "1800200000020001",  # 18 AMS HT, serious
    "050001000001000A",  # placeholder (no text), fatal
    "0500060000020070",  # placeholder the X2D reports all the time
)
ERROR_CODES = ("03008004", "0300400C", "03004006")


def main(repository: str) -> None:
    data: dict[str, dict[str, list[dict[str, str]]]] = {"device_hms": {}, "device_error": {}}
    for language in ("en", "de", "ja"):
        raw = subprocess.run(["git", "-C", repository, "show", f"{COMMIT}:{TABLES.format(language)}"],
                             capture_output=True, check=True).stdout
        table = json.loads(gzip.decompress(raw))
        for part, codes in (("device_hms", HMS_CODES), ("device_error", ERROR_CODES)):
            entries = []
            for code in codes:
                texts = table[part].get(code)
                if texts is None:
                    continue
                text = next((t for t, models in texts.items() if not models), next(iter(texts)))
                entries.append({"ecode": code, "intro": text})
            data[part][language] = entries
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
