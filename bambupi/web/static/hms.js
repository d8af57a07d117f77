// How the pages show an HMS entry the box described (the state JSON's `hms` list, the MQTT log's notes): one
// colour per entry and one way to write it, shared by the dashboard and the MQTT debug page. The words (description,
// recommended action) come from the box, which has the official tables; there is no code -> text table here.
"use strict";

const HMS = (() => {
  const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const ORDER = ["fatal", "serious", "common", "unknown", "info"];
  const SILENT_NOTE = "No action needed: the printer reports this code without a problem to fix.";

  // The CSS class suffix (style.css .s-*). A silent code (a placeholder with no official text, or one a model
  // reports all the time) is never coloured as an alarm, whatever its severity bits say.
  const tone = (h) => (h.silent ? "silent" : ORDER.includes(h.severity) ? h.severity : "unknown");
  const alarming = (h) => !h.silent;
  // Most urgent first, silent ones last; otherwise in the printer's order.
  const rank = (h) => (h.silent ? ORDER.length : ORDER.indexOf(tone(h)));
  const sorted = (list) => list.map((h, i) => [h, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j)
    .map(([h]) => h);
  const description = (h) => h.description || (h.silent ? "No description published for this code" : "Unknown error");

  // One entry of the card's list: what happened, what to do, then the code, module and the support article.
  function item(h) {
    const action = h.action ? `<span class="action" data-field="hms-action">${esc(h.action)}</span>` : "";
    const note = h.silent ? `<span class="note">${esc(SILENT_NOTE)}</span>` : "";
    const facts = [`<span class="num">${esc(h.code)}</span>`];
    if (!h.silent) facts.push(esc(h.severity));
    if (h.module) facts.push(esc(h.module));
    if (h.standing) facts.push("standing (was already active when bambupi started)");
    const link = h.url ? `<a href="${esc(h.url)}" target="_blank" rel="noopener">Support article</a>` : "";
    return `<li class="s-${tone(h)}" data-code="${esc(h.code)}"><span class="desc" data-field="hms-description">${
      esc(description(h))}</span>${action}${note}<span class="meta">${facts.join(" · ")}</span>${link}</li>`;
  }

  // One line under an MQTT message: the code and the same description the card shows.
  function line(h) {
    const silent = h.silent ? ' <span class="muted">(no action needed)</span>' : "";
    return `<li class="s-${tone(h)}"><span class="num">${esc(h.code)}</span> ${esc(description(h))}${silent}</li>`;
  }

  return { tone, alarming, sorted, description, item, line };
})();
