"""The page frame (bambupi/web/frame.py, templates/frame.html): every page template uses it, icons come from one
sprite, values are escaped, and a page without the frame is served as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bambupi
from bambupi.web import frame

PACKAGE = Path(bambupi.__file__).parent
SPRITE = frame.TEMPLATES / "icons.html"
# Parts included into a page, not pages themselves.
PARTS = {"frame.html", "icons.html", "top.html", "filaments.html"}


def page_templates() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.html") if p.name not in PARTS)


def test_every_page_template_is_drawn_in_the_frame() -> None:
    pages = page_templates()
    assert len(pages) >= 10
    for path in pages:
        first = path.read_text("utf-8").lstrip().splitlines()[0]
        assert first.startswith("% rebase('frame.html'"), f"{path.relative_to(PACKAGE)} is not in the page frame"
        assert "<!doctype" not in path.read_text("utf-8").lower(), path  # one document: the frame's


def test_the_icon_names_are_the_sprites_symbols_and_an_unknown_one_is_an_error() -> None:
    symbols = set(re.findall(r'<symbol id="i-([a-z]+)"', SPRITE.read_text("utf-8")))
    assert symbols == set(frame.ICONS)
    assert frame.icon("camera") == (
        '<svg class="icon" aria-hidden="true" focusable="false"><use href="#i-camera"/></svg>'
    )
    assert 'role="img" aria-label="a &lt;b&gt;"' in frame.icon("warn", "a <b>")
    with pytest.raises(ValueError, match="no icon 'emoji'"):
        frame.icon("emoji")


def test_icons_used_in_templates_and_scripts_exist() -> None:
    used: set[str] = set()
    for path in [*PACKAGE.rglob("*.html"), *(frame.TEMPLATES.parent / "static").glob("*.js")]:
        text = path.read_text("utf-8")
        used |= set(re.findall(r"""icon\(['"]([a-z]+)['"]""", text))
        used |= set(re.findall(r"""\bic\(["']([a-z]+)["']\)""", text))
        used |= set(re.findall(r"""bambupiIcon\(["']([a-z]+)["']\)""", text))
    assert used and used <= frame.ICONS, used - frame.ICONS


def test_a_page_in_the_frame_escapes_its_values_and_marks_its_menu_entry(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text("% rebase('frame.html', title=title, active='power')\n<p id=x>{{text}}</p>\n", "utf-8")
    html = frame.render_fresh(page, title="Plugs & <things>", text="<script>alert(1)</script>")
    assert "<title>Plugs &amp; &lt;things&gt; · bambupi</title>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert re.search(r'<a href="/power" aria-current="page">', html)
    assert html.count('aria-current="page"') == 1
    assert html.count('<symbol id="i-') == len(frame.ICONS)  # the sprite, once


def test_a_file_without_the_frame_is_served_as_it_is(tmp_path: Path) -> None:
    page = tmp_path / "plain.html"
    page.write_text("<!doctype html><p>plain</p>\n", "utf-8")
    assert frame.render_fresh(page) == "<!doctype html><p>plain</p>\n"
