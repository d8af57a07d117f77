"""Support links lead to articles that exist: every link bambupi gives is one the published HMS index lists.

The index (tests/fixtures/hms-wiki-links.json.gz, as ha-bambulab scrapes it; its sidecar names the source) says,
for each code, which article pages list it and for which models. bambupi ships a table derived from it
(bambupi/data/hms_articles.txt); ``python -m tests.test_captures_links`` derives it again after the fixture is
replaced by a newer copy.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bambupi.printer.hms import ARTICLE_TABLE, WIKI_HMS_HOME, hms_url, parse_article_table
from bambupi.printer.state import apply_message, initial_state
from bambupi.printer_models import KNOWN_MODELS
from tests.capture_corpus import all_captures

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INDEX_FILE = FIXTURES / "hms-wiki-links.json.gz"
SITE = "https://wiki.bambulab.com"
# code (16 hex digits) -> {article path: the models it names; [] for the path most models share}
Index = dict[str, dict[str, list[str]]]


def published_index() -> Index:
    data: Index = json.loads(gzip.decompress(INDEX_FILE.read_bytes()))
    return data


def shipped_table() -> str:
    return (importlib.resources.files("bambupi") / "data" / ARTICLE_TABLE).read_text("utf-8")


def _article_ref(code: str, path: str) -> str:
    """``/en/x1/troubleshooting/hmscode/0300_0100_0001_0007`` -> ``x1``, or ``x1/<CODE>`` for a synonym's page."""
    _, en, series, troubleshooting, hmscode, page = path.split("/")
    assert (en, troubleshooting, hmscode) == ("en", "troubleshooting", "hmscode"), path
    return series if page.replace("_", "") == code else f"{series}/{page}"


def derive_table(index: Index, source: dict[str, Any]) -> str:
    """The shipped table from the published index: one line per code, the shared article first."""
    lines = [
        "# Bambu Lab's HMS support articles: which exist, and for which models. Derived by",
        f"# tests/test_captures_links.py from the published HMS index as {source['repository']} scrapes it:",
        f"# {source['path']} at {source['commit']}",
        f"# (kept as tests/fixtures/{INDEX_FILE.name}).",
        "# Per line: a code (16 hex digits), the article most models share, then <article>=<MODEL>,… for the models",
        "# the index gives an article of their own. <series> is the code's own page",
        "# /en/<series>/troubleshooting/hmscode/<CODE>; <series>/<OTHER_CODE> is another code's page the index lists",
        "# this code on (a synonym).",
    ]
    for code in sorted(index):
        articles = index[code]
        shared = [_article_ref(code, path) for path, models in articles.items() if not models]
        assert len(shared) == 1, (code, articles)
        own = [f"{_article_ref(code, path)}={','.join(sorted(models))}" for path, models in sorted(articles.items())
               if models]  # fmt: skip
        lines.append(" ".join([code, *shared, *own]))
    return "\n".join(lines) + "\n"


def index_source() -> dict[str, Any]:
    return tomllib.loads((FIXTURES / "hms-wiki-links.source.toml").read_text("utf-8"))


def test_the_shipped_table_is_the_published_index() -> None:
    index = published_index()
    assert shipped_table() == derive_table(index, index_source())
    # Read back by bambupi's own parser, the table names the same pages for the same models.
    parsed = parse_article_table(shipped_table())
    assert parsed.keys() == index.keys()
    for code, (shared, by_model) in parsed.items():
        read: dict[str, list[str]] = {}
        for model, article in by_model.items():
            read.setdefault(article, []).append(model)
        expanded = {_path(code, article): sorted(models) for article, models in read.items()}
        expanded[_path(code, shared)] = []
        assert expanded == {path: sorted(models) for path, models in index[code].items()}, code


def _path(code: str, article: str) -> str:
    series, _, page = article.partition("/")
    return f"/en/{series}/troubleshooting/hmscode/{page or '_'.join(code[i : i + 4] for i in range(0, 16, 4))}"


def test_the_published_index_has_no_p1_articles_and_files_h2d_under_h2() -> None:
    """What made most links bambupi built lead nowhere: it linked /en/p1/… and /en/h2d/… for every code."""
    index = published_index()
    series = {path.split("/")[2] for articles in index.values() for path in articles}
    assert "p1" not in series
    h2d_own = [path for articles in index.values() for path, models in articles.items() if "H2D" in models]
    under_h2 = sum(path.startswith("/en/h2/") for path in h2d_own)
    assert under_h2 > 10 * sum(path.startswith("/en/h2d/") for path in h2d_own)


MODELS = sorted(KNOWN_MODELS | {"A2L", "Mystery 9000"})


@pytest.mark.parametrize("model", MODELS)
def test_every_link_is_an_article_the_index_lists_for_the_code(model: str) -> None:
    index = published_index()
    key = model.replace(" ", "").upper()
    for code, articles in index.items():
        text = "_".join(code[i : i + 4] for i in range(0, 16, 4))
        url = hms_url(text, model)
        assert url.startswith(SITE) and url.removeprefix(SITE) in articles, (code, model, url)
        own = [path for path, models in articles.items() if key in models]
        if own:  # the model's own article where the index names one
            assert url == SITE + own[0], (code, model)
        else:
            assert articles[url.removeprefix(SITE)] == [], (code, model)


@pytest.mark.parametrize("model", ["P1S", "X1C", "H2D", "X2D"])
def test_a_code_without_an_article_links_the_hms_index(model: str) -> None:
    index = published_index()
    for code in ("0500_0600_0002_0070", "0500_0100_0002_000B", "0503_0000_0003_0027", "FFFF_FFFF_FFFF_FFFF"):
        assert code.replace("_", "") not in index
        assert hms_url(code, model) == WIKI_HMS_HOME


def test_codes_in_the_real_captures_link_to_articles_that_exist() -> None:
    """Each capture replayed through the reducer: every HMS entry's link is an article listed for its code (the
    model's own where the index names one), or the HMS index when none is listed."""
    index = published_index()
    seen = 0
    for item in all_captures():
        state = initial_state()
        for message in item.messages:
            state = apply_message(state, message, model=item.model).state
            for entry in state["hms"]:
                seen += 1
                articles = index.get(entry["code"].replace("_", ""))
                if articles is None:
                    assert entry["url"] == WIKI_HMS_HOME, (item.name, entry)
                    continue
                path = entry["url"].removeprefix(SITE)
                assert path in articles, (item.name, entry)
                own = [p for p, models in articles.items() if item.model.upper() in models]
                assert path == (own[0] if own else next(p for p, models in articles.items() if not models))
    assert seen  # the corpus holds HMS entries (X2D's permanent 0500_0600_0002_0070 at least)


# Links ha-bambulab's tests assert for these codes (tests/pybambu/test_models.py at 809391e7) and one a user
# checked by hand: ha-bambulab issue #1935, an A1 mini's 0300_1A00_0002_0001, whose /en/x1/ link gave 404 and whose
# /en/a1-mini/ page worked.
@pytest.mark.parametrize(
    ("attr_code", "model", "article"),
    [
        ("0300_0100_0001_0007", "X1C", "/en/x1/troubleshooting/hmscode/0300_0100_0001_0007"),
        ("0300_0100_0001_0007", "X2D", "/en/x2d/troubleshooting/hmscode/0300_0100_0001_0007"),
        ("0300_0100_0001_0007", "A1", "/en/x1/troubleshooting/hmscode/0300_0100_0001_0007"),
        ("0300_0100_0001_0007", "P1S", "/en/x1/troubleshooting/hmscode/0300_0100_0001_0007"),
        ("0300_0100_0001_0007", "H2D", "/en/h2/troubleshooting/hmscode/0300_0100_0001_0007"),
        ("0300_0200_0001_0001", "Z-1000", "/en/x1/troubleshooting/hmscode/0300_0200_0001_0001"),
        ("0700_0100_0002_0010", "H2D", "/en/h2/troubleshooting/hmscode/0700_0100_0002_0010"),
        ("0702_0100_0002_0010", "H2D", "/en/h2/troubleshooting/hmscode/0700_0100_0002_0010"),  # a synonym's page
        ("07FF_7000_0002_0003", "A1", "/en/h2/troubleshooting/hmscode/07FE_7000_0002_0003"),
        ("07FF_7000_0002_0003", "P2S", "/en/p2s/troubleshooting/hmscode/07FF_7000_0002_0003"),
        ("0300_1A00_0002_0001", "A1 mini", "/en/a1-mini/troubleshooting/hmscode/0300_1A00_0002_0001"),
    ],
)
def test_links_peers_assert(attr_code: str, model: str, article: str) -> None:
    assert hms_url(attr_code, model) == SITE + article


if __name__ == "__main__":
    target = importlib.resources.files("bambupi") / "data" / ARTICLE_TABLE
    Path(str(target)).write_text(derive_table(published_index(), index_source()), encoding="utf-8")
    print(f"wrote {target}")
