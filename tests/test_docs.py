"""The documentation a newcomer follows: the README stays short, every relative link in it and in docs/ leads to a
file (and heading) that exists, and docs/config.md names every config key the shipped example documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bambupi.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
EXAMPLE = ROOT / "bambupi" / "data" / "bambupi.example.toml"
README_LIMIT_BYTES = 12 * 1024

# [text](target) outside code; the target ends at whitespace or the closing parenthesis.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return _CODE.sub("", _FENCE.sub("", text))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE.sub(lambda m: m.group(0).strip("`"), heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


def _links(page: Path) -> list[str]:
    return _LINK.findall(_prose(page.read_text(encoding="utf-8")))


def test_the_readme_stays_a_fifth_of_what_it_was() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT_BYTES})"


def test_the_docs_pages_are_there() -> None:
    names = {p.name for p in DOCS}
    for name in ("architecture.md", "config.md", "api.md", "image.md", "panel.md", "camera.md", "power.md",
                 "notifications.md", "development.md", "performance.md"):
        assert name in names, name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    links = _links(page)
    assert links or page == README or page.name in {"performance.md"}, "a page that links nowhere"
    broken = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: — not checked here
            continue
        path_part, _, fragment = target.partition("#")
        file = (page.parent / path_part).resolve() if path_part else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert not broken, broken


def test_every_doc_page_is_reachable_from_the_readme() -> None:
    seen: set[Path] = set()
    todo = [README]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in _links(page):
            path_part = target.partition("#")[0]
            if path_part.endswith(".md") and "://" not in path_part:
                linked = (page.parent / path_part).resolve()
                if linked.exists():
                    todo.append(linked)
    assert not [p.name for p in DOCS if p.resolve() not in seen]


def _documented_keys() -> list[str]:
    """Every key the schema declares, by the path docs/config.md writes: ``web.listen``, ``printer[].host``,
    ``printer[].plug.kind``, ``notify[].topic``."""
    keys = []
    for name, section in SCHEMA.items():
        prefix = f"{name}[]." if section.many else f"{name}."
        keys += [prefix + key for key in section.options]
        for table_name, table in section.tables.items():
            keys += [f"{prefix}{table_name}.{key}" for key in table.options]
    return keys


def test_config_reference_names_every_key_of_the_schema_and_of_the_example() -> None:
    reference = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    keys = _documented_keys()
    assert len(keys) > 80  # the schema was read, not an empty table
    missing = [key for key in keys if f"`{key}`" not in reference]
    assert not missing, f"docs/config.md does not describe {missing}"
    # The example documents every key too (tests/test_config.py); a key there by another name would show here.
    example = EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?([a-z_0-9]+) = ", example, re.MULTILINE))
    assert named <= {key.rsplit(".", 1)[-1] for key in keys}, named - {key.rsplit(".", 1)[-1] for key in keys}
