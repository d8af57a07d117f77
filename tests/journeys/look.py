"""What every page must be at phone and desktop size (issue 19): checked in headless Chromium on the real page.

- it fits: nothing wider than the screen (the page never scrolls sideways);
- every tap target is at least 44 x 44 CSS px (a link inside a sentence is exempt, as in WCAG 2.5.8; a checkbox
  counts with its label);
- axe-core (tests/vendor/axe-core, pinned) finds no serious or critical violation, in the light and the dark theme.

Each check returns the problems as readable lines (empty: fine), so one failing test lists all of a page's problems.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final

from tests.browser import Page

AXE: Final = Path(__file__).resolve().parent.parent / "vendor" / "axe-core" / "axe.min.js"
AXE_SHA256: Final = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"  # axe-core 4.10.3
PHONE: Final = (390, 844)
DESKTOP: Final = (1280, 800)
NARROW: Final = 320  # the narrowest phone the text must fit
TAP_PX: Final = 44

# A short CSS path for messages: tag#id.class, up to three ancestors.
_DESCRIBE: Final = """
const describe = (el) => {
  const parts = [];
  for (let e = el; e && e !== document.body && parts.length < 3; e = e.parentElement) {
    parts.unshift(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (e.classList.length ? '.' + [...e.classList].join('.') : ''));
  }
  const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30);
  return parts.join(' > ') + (text ? ` "${text}"` : '');
};
"""

_TARGETS: Final = """
(() => {
""" + _DESCRIBE + """
  const bad = [];
  const wanted = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]';
  for (const el of document.querySelectorAll(wanted)) {
    if (el.closest('[hidden], .sprite, .skip')) continue;
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden' || (r.width === 0 && r.height === 0)) continue;
    // A link inside a sentence (WCAG 2.5.8's inline exception): its line sets its height.
    if (el.tagName === 'A' && style.display === 'inline') {
      const around = (el.parentElement.innerText || '').trim().length;
      if (around > (el.innerText || '').trim().length + 3) continue;
    }
    let box = r;
    if ((el.type === 'checkbox' || el.type === 'radio') && el.labels && el.labels.length) {
      box = el.labels[0].getBoundingClientRect();
    }
    if (box.width < TAP - 0.5 || box.height < TAP - 0.5) {
      bad.push(`${describe(el)}: ${Math.round(box.width)} x ${Math.round(box.height)} px`);
    }
  }
  return bad;
})()
"""

_OVERFLOW: Final = """
(() => {
""" + _DESCRIBE + """
  const width = WIDTH;
  if (document.documentElement.scrollWidth <= width) return [];
  const wide = [...document.body.querySelectorAll('*')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.right > width + 0.5 && r.width > 0 && !el.closest('.scroll, pre, .sprite');
  });
  // The innermost ones say what is too wide.
  const leaves = wide.filter((el) => !wide.some((other) => other !== el && el.contains(other)));
  return [`page ${document.documentElement.scrollWidth} px wide at ${width} px`,
          ...leaves.slice(0, 5).map((el) => `${describe(el)} ends at ${Math.round(el.getBoundingClientRect().right)}`)];
})()
"""


def axe_source() -> str:
    data = AXE.read_bytes()
    # The file is what the README in its folder says it is (the pinned release, unmodified).
    assert hashlib.sha256(data).hexdigest() == AXE_SHA256, "tests/vendor/axe-core/axe.min.js is not axe-core 4.10.3"
    return data.decode("utf-8")


async def set_size(page: Page, width: int, height: int, *, mobile: bool) -> None:
    await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1 if not mobile
                    else 2, mobile=mobile)


async def overflow(page: Page, width: int) -> list[str]:
    problems: list[str] = await page.evaluate(_OVERFLOW.replace("WIDTH", str(width)))
    return problems


async def small_targets(page: Page) -> list[str]:
    problems: list[str] = await page.evaluate(_TARGETS.replace("TAP", str(TAP_PX)))
    return problems


async def axe(page: Page, source: str, *, only: tuple[str, ...] = ()) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (``only``: these rules alone)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(source + "\n;true")
    options = {"resultTypes": ["violations"]}
    if only:
        options["runOnly"] = {"type": "rule", "values": list(only)}
    found: list[str] = await page.evaluate(
        f"axe.run(document, {json.dumps(options)}).then((r) => r.violations"
        ".filter((v) => v.impact === 'serious' || v.impact === 'critical')"
        ".map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4).map((n) => n.target.join(' ')"
        " + (n.failureSummary ? ' [' + n.failureSummary.replace(/\\s+/g, ' ').slice(0, 160) + ']' : ''))"
        ".join(' | ')))"
    )
    return found


async def theme(page: Page, name: str) -> None:
    """The header's colour switch, set as the person's choice would set it ("light" or "dark")."""
    await page.evaluate(f"document.documentElement.dataset.theme = {name!r}")
