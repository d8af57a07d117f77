// The dashboard: one card per printer, kept live over /ws (snapshot, then merge-patch deltas and events).
// No framework and no build step: render functions turn a printer object into HTML text, everything escaped.
"use strict";

const HEARTBEAT_S = 15;            // the box sends something at least this often
const DEAD_AFTER_S = HEARTBEAT_S * 2.5;
const STALE_AFTER_S = 30;          // "last update" turns yellow
const BACKOFF_MIN_S = 0.5, BACKOFF_MAX_S = 10;
const MAX_EVENTS = 20;
const PANEL_REFRESH_MS = 3000;

const printers = {};               // id -> printer object, exactly what the box sent (null == missing)
const openDetails = new Set();     // which <details> the user opened, kept across re-renders
let socket = null, lastMessageAt = 0, backoff = BACKOFF_MIN_S, retryAt = 0, everConnected = false;
const eventItems = [];

// RFC 7386: null removes, objects merge, anything else (lists too) replaces.
function applyMergePatch(target, patch) {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const result = (target !== null && typeof target === "object" && !Array.isArray(target)) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const num = (value, digits = 0) => (typeof value === "number" ? value.toFixed(digits) : "–");
const safeColor = (c) => (/^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(c || "") ? c.slice(0, 7) : "transparent");

const CONNECTION = {
  online: ["Online", "●"], connecting: ["Connecting", "◌"], stale: ["Stale", "◐"], offline: ["Offline", "✕"],
};
const STATES = {
  RUNNING: ["Printing", "▶"], PAUSE: ["Paused", "⏸"], FINISH: ["Finished", "✓"], FAILED: ["Failed", "✕"],
  IDLE: ["Idle", "○"], PREPARE: ["Preparing", "…"], SLICING: ["Slicing", "…"], INIT: ["Starting", "…"],
  UNKNOWN: ["Unknown", "?"],
};
const SEVERITY_ORDER = ["fatal", "serious", "common", "unknown", "info"];
const SPEEDS = { 1: "Silent", 2: "Standard", 3: "Sport", 4: "Ludicrous" };
const CANCELLED = new Set(["0300_400C", "0500_400E"]);

function duration(minutes) {
  if (typeof minutes !== "number" || minutes <= 0) return null;
  const h = Math.floor(minutes / 60), m = Math.round(minutes % 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function amsName(id) {
  const n = Number(id);
  if (n >= 128) return `AMS HT ${String.fromCharCode(65 + n - 128)}`;
  return `AMS ${String.fromCharCode(65 + n)}`;
}

function detailsAttr(key) {
  return `data-key="${esc(key)}"${openDetails.has(key) ? " open" : ""}`;
}

function renderConnection(p) {
  const [word, symbol] = CONNECTION[p.connection] || [p.connection, "?"];
  const reason = p.connection_reason ? esc(p.connection_reason) : "No problem reported.";
  return `<details class="conn" ${detailsAttr(`${p.id}:conn`)}>
    <summary><span class="pill c-${esc(p.connection)}" data-field="connection"><span aria-hidden="true">${symbol}</span>${esc(word)}</span></summary>
    <p class="reason muted">${reason}</p></details>`;
}

function renderProgress(s, now) {
  const active = ["RUNNING", "PAUSE", "PREPARE"].includes(s.gcode_state);
  if (!active && s.gcode_state !== "FINISH") return "";
  const pct = typeof s.percent === "number" ? Math.max(0, Math.min(100, s.percent)) : 0;
  const parts = [`<span class="pct" data-field="percent">${pct} %</span>`];
  if (s.total_layers) parts.push(`<span data-field="layer">Layer ${s.layer ?? 0} of ${s.total_layers}</span>`);
  const left = active ? duration(s.remaining_min) : null;
  if (left) {
    parts.push(`<span>${left} left</span>`);
    parts.push(`<span>done at ${clock(new Date(now + s.remaining_min * 60000))}</span>`);
  }
  return `<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}"
    aria-label="Print progress"><span style="width:${pct}%"></span></div>
    <div class="progress-line">${parts.join("")}</div>`;
}

function temp(label, value, target, field) {
  const aim = typeof target === "number" && target > 0 ? ` / ${num(target)}` : "";
  return `<div class="temp" data-field="${field}"><span class="label">${esc(label)}</span>
    <span class="value">${num(value)}${aim} °C</span></div>`;
}

function renderTemps(s) {
  const cells = [];
  const nozzles = Object.entries(s.nozzles || {});
  if (nozzles.length > 1) {
    for (const [id, n] of nozzles) {
      const active = String(s.active_nozzle) === id ? " (active)" : "";
      cells.push(temp(`Nozzle ${Number(id) + 1}${active}`, n.temp, n.target, `nozzle-${id}`));
    }
  } else {
    cells.push(temp("Nozzle", s.nozzle_temp, s.nozzle_target, "nozzle"));
  }
  cells.push(temp("Bed", s.bed_temp, s.bed_target, "bed"));
  if (s.chamber_temp != null) cells.push(temp("Chamber", s.chamber_temp, s.chamber_target, "chamber"));
  return `<div class="temps">${cells.join("")}</div>`;
}

function tray(label, t, active) {
  if (!t || t.empty) {
    return `<div class="tray${active ? " active" : ""}"><span class="swatch empty"></span>
      <span class="tag">${esc(label)}</span><br><span class="muted">empty</span></div>`;
  }
  const remain = typeof t.remain === "number" && t.remain >= 0 ? `${t.remain} %` : "";
  return `<div class="tray${active ? " active" : ""}" title="${esc(t.color || "")}">
    <span class="swatch" style="background:${safeColor(t.color)}"></span>
    <span class="tag">${active ? "▶ " : ""}${esc(label)}</span> ${esc(t.type || "?")}<br>
    <span class="num">${remain}</span>${active ? '<br><span class="muted">in use</span>' : ""}</div>`;
}

function renderAms(s) {
  const units = Object.entries((s.ams && s.ams.units) || {});
  const at = s.active_tray || {};
  let html = "";
  for (const [id, unit] of units) {
    const facts = [];
    if (unit.humidity_pct != null) facts.push(`${unit.humidity_pct} % RH`);
    else if (unit.humidity_index != null) facts.push(`humidity ${unit.humidity_index}/5`);
    if (unit.temp != null) facts.push(`${num(unit.temp, 1)} °C`);
    const trays = Object.entries(unit.trays || {}).map(([tid, t]) =>
      tray(`${Number(tid) + 1}`, t, String(at.ams) === id && String(at.tray) === tid));
    html += `<div class="ams-unit" data-field="ams-${esc(id)}"><div class="unit-head">${esc(amsName(id))}
      <span class="num">${esc(facts.join(" · "))}</span></div><div class="trays">${trays.join("")}</div></div>`;
  }
  if (s.external_spool) {
    html += `<div class="ams-unit"><div class="unit-head">External spool</div>
      <div class="trays">${tray("Ext", s.external_spool, Boolean(at.external))}</div></div>`;
  }
  return html ? `<h3>Filament</h3>${html}` : "";
}

function worstSeverity(hms) {
  for (const level of SEVERITY_ORDER) if (hms.some((h) => h.severity === level)) return level;
  return "unknown";
}

function renderHms(p) {
  const hms = p.state.hms || [];
  if (!hms.length) {
    return `<div class="hms"><span class="pill s-ok" data-field="hms"><span aria-hidden="true">✓</span>HMS OK</span></div>`;
  }
  const worst = worstSeverity(hms);
  const items = hms.map((h) => `<li class="s-${esc(h.severity)}">
      <span class="desc">${esc(h.description || "Unknown error")}</span><br>
      <span class="meta"><span class="num">${esc(h.code)}</span> · ${esc(h.severity)} · ${esc(h.module || "")}
      ${h.standing ? " · standing (was already active when bambupi started)" : ""}</span>
      ${h.url ? `<br><a href="${esc(h.url)}" target="_blank" rel="noopener">Support article</a>` : ""}</li>`);
  const count = hms.length === 1 ? "1 error" : `${hms.length} errors`;
  return `<details class="hms" ${detailsAttr(`${p.id}:hms`)}><summary><span class="pill s-${worst}" data-field="hms">
    <span aria-hidden="true">⚠</span>HMS: ${count}, ${esc(worst)}</span></summary>
    <ul class="hms-list">${items.join("")}</ul></details>`;
}

function wifi(dbm) {
  if (typeof dbm !== "number") return null;
  const quality = dbm >= -55 ? "strong" : dbm >= -67 ? "good" : dbm >= -75 ? "weak" : "poor";
  return `Wi-Fi ${dbm} dBm (${quality})`;
}

function renderFacts(p, now) {
  const s = p.state;
  const facts = [];
  if (s.print_error) {
    const what = CANCELLED.has(s.print_error) ? "cancelled" : "print error";
    facts.push(`<span class="error" data-field="print-error">✕ ${what} ${esc(s.print_error)}</span>`);
  }
  const w = wifi(s.wifi_dbm);
  if (w) facts.push(`<span class="num">${w}</span>`);
  if (s.speed_level) facts.push(`<span>Speed: ${esc(SPEEDS[s.speed_level] || s.speed_level)}</span>`);
  facts.push(renderAgo(p, now));
  return `<div class="facts">${facts.join("")}</div>`;
}

function renderAgo(p, now) {
  if (!p.last_report_at) return `<span class="ago stale" data-field="ago">no report yet</span>`;
  const seconds = now / 1000 - p.last_report_at;
  const stale = seconds > STALE_AFTER_S;
  return `<span class="ago${stale ? " stale" : ""}" data-field="ago">${stale ? "⚠ " : ""}updated ${ago(seconds)}</span>`;
}

// The camera relay is its own part of the box: the card links to its MJPEG stream when it is live.
function renderCamera(p) {
  const c = p.camera || {};
  if (c.status === "live") {
    return `<a class="camera" data-field="camera" href="/api/printers/${encodeURIComponent(p.id)}/camera">▶ Camera (live)</a>`;
  }
  const why = c.reason ? ` title="${esc(c.reason)}"` : "";
  return `<span class="camera" data-field="camera"${why}>Camera: ${esc(c.status || "unknown")}</span>`;
}

// Controls need the owner's session; the box refuses them without it, the page only mirrors that.
let session = { logged_in: false, csrf: null };
const commandStatus = {};          // printer id -> text of the last command's outcome
const armedStop = {};              // printer id -> time until which "Stop" waits for its confirmation
const CONTROLS_OFF = "Controls unavailable: this printer refuses commands from other apps. Turn on LAN Only mode " +
  "and Developer mode on the printer (Settings → Network); watching works either way.";

function button(id, command, text, extra = "") {
  return `<button type="button" data-printer="${esc(id)}" data-command="${command}" ${extra}>${text}</button>`;
}

function renderControls(p) {
  const s = p.state || {};
  if (!session.logged_in) {
    return `<div class="controls" data-field="controls"><a href="/login">Log in to control the printer</a></div>`;
  }
  const disabled = p.controls_available && p.connection === "online" ? "" : "disabled";
  const buttons = [];
  if (s.gcode_state === "RUNNING") buttons.push(button(p.id, "pause", "⏸ Pause", disabled));
  if (s.gcode_state === "PAUSE") buttons.push(button(p.id, "resume", "▶ Resume", disabled));
  if (["RUNNING", "PREPARE", "PAUSE"].includes(s.gcode_state)) {
    const armed = (armedStop[p.id] || 0) > Date.now();
    buttons.push(button(p.id, "stop", armed ? "⚠ Tap again to stop the print" : "⏹ Stop", disabled));
  }
  const lightOn = (s.lights || {}).chamber_light === "on";
  buttons.push(button(p.id, lightOn ? "light_off" : "light_on", lightOn ? "💡 Light off" : "💡 Light on", disabled));
  if (s.gcode_state === "RUNNING") {
    const options = [[1, "Silent"], [2, "Standard"], [3, "Sport"], [4, "Ludicrous"]].map(([level, name]) =>
      `<option value="${level}"${s.speed_level === level ? " selected" : ""}>${name}</option>`).join("");
    buttons.push(`<label class="speed">Speed <select data-printer="${esc(p.id)}" data-command="speed" ${disabled}>` +
      `${options}</select></label>`);
  }
  const why = p.controls_available ? "" : `<p class="muted controls-off">${esc(CONTROLS_OFF)}</p>`;
  const outcome = commandStatus[p.id] ? `<p class="command-status" role="status">${esc(commandStatus[p.id])}</p>` : "";
  return `<div class="controls" data-field="controls">${buttons.join("")}${why}${outcome}</div>`;
}

async function sendCommand(id, command, extra = {}) {
  commandStatus[id] = `${command}: sending…`;
  render();
  try {
    const r = await fetch(`/api/printers/${encodeURIComponent(id)}/commands`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf || "" },
      body: JSON.stringify({ command, ...extra }),
    });
    const body = await r.json();
    if (r.status === 401) session = { logged_in: false, csrf: null };
    const why = body.error || `${body.result}${body.reason ? ` (${body.reason})` : ""}`;
    commandStatus[id] = r.ok ? `${command}: ${body.result} (the printer confirmed)` : `${command}: ${why}`;
  } catch {
    commandStatus[id] = `${command}: the box did not answer`;
  }
  render();
}

function onControl(event) {
  const target = event.target.closest("[data-command]");
  if (!target || target.disabled) return;
  const id = target.dataset.printer, command = target.dataset.command;
  if (command === "speed") {
    if (event.type === "change") sendCommand(id, "speed", { level: Number(target.value) });
    return;
  }
  if (event.type !== "click") return;
  if (command === "stop" && !((armedStop[id] || 0) > Date.now())) {
    armedStop[id] = Date.now() + 5000;  // a stopped print cannot be resumed: ask once more
    render();
    return;
  }
  delete armedStop[id];
  sendCommand(id, command);
}

async function loadSession() {
  try {
    const r = await fetch("/api/session", { cache: "no-store" });
    if (r.ok) session = await r.json();
  } catch { /* the box is restarting; controls stay hidden */ }
  if (Object.keys(printers).length) render();
}

function renderCard(p, now) {
  const s = p.state || {};
  const [word, symbol] = STATES[s.gcode_state] || ["Waiting for the printer", "…"];
  const job = s.subtask_name ? `<span class="job" data-field="job">${esc(s.subtask_name)}</span>` : "";
  return `<div class="card-head"><div><h2>${esc(p.name)}</h2><span class="model muted">${esc(p.model)}</span></div>
    ${renderConnection(p)}</div>
    <div class="status"><span class="word" data-field="state"><span aria-hidden="true">${symbol}</span> ${esc(word)}</span>${job}</div>
    ${renderProgress(s, now)}${renderControls(p)}${renderTemps(s)}${renderHms(p)}${renderAms(s)}${renderFacts(p, now)}
    <div class="card-foot">${renderCamera(p)}<a href="/printers/${encodeURIComponent(p.id)}/mqtt">MQTT log</a></div>`;
}

function render() {
  const main = document.getElementById("printers");
  const now = Date.now();
  const ids = Object.keys(printers);
  if (!ids.length) {
    main.innerHTML = `<p class="muted">No printers configured. Add one in <a href="/settings">Settings</a>.</p>`;
    return;
  }
  for (const el of main.querySelectorAll("details[data-key]")) {
    if (el.open) openDetails.add(el.dataset.key); else openDetails.delete(el.dataset.key);
  }
  for (const child of [...main.children]) if (!(child.dataset.printer in printers)) child.remove();
  for (const id of ids) {
    let card = main.querySelector(`article[data-printer="${CSS.escape(id)}"]`);
    if (!card) {
      card = document.createElement("article");
      card.className = "card";
      card.dataset.printer = id;
      main.appendChild(card);
    }
    const html = renderCard(printers[id], now);
    if (card.dataset.html !== html) {
      card.innerHTML = html;
      card.dataset.html = html;
    }
  }
}

function renderEvent(e) {
  const at = typeof e.at === "number" ? clock(new Date(e.at * 1000)) : "";
  const who = printers[e.printer] ? printers[e.printer].name : e.printer;
  const words = {
    job_started: `started ${e.job || "a print"}`, job_finished: `finished ${e.job || "the print"}`,
    job_failed: `print failed${e.job ? `: ${e.job}` : ""}`, job_cancelled: "print cancelled",
    job_paused: "paused", job_resumed: "resumed",
    hms_raised: `HMS ${e.severity || ""}: ${(e.hms && e.hms.description) || e.code}`,
    hms_cleared: `HMS cleared: ${(e.hms && e.hms.description) || e.code}`,
    connection_lost: `connection lost${e.reason ? ` (${e.reason})` : ""}`, connection_restored: "back online",
    events_lost: `${e.count} events missed`,
    power_warning: `⚠ ${e.message}`, power_off: e.message, power_check: `⚠ ${e.message}`,
  };
  return `<li><time>${esc(at)}</time> ${esc(who || "")}: ${esc(words[e.kind] || e.kind)}</li>`;
}

function addEvent(e) {
  eventItems.unshift(renderEvent(e));
  eventItems.length = Math.min(eventItems.length, MAX_EVENTS);
  document.getElementById("events").innerHTML = eventItems.join("");
}

function showLink(text) {
  const el = document.getElementById("link");
  el.hidden = !text;
  el.textContent = text || "";
  // While the box is unreachable the cards show its last word: greyed, so nobody mistakes them for live.
  document.getElementById("printers").classList.toggle("old", Boolean(text));
}

function onMessage(raw) {
  lastMessageAt = Date.now();
  let msg;
  try { msg = JSON.parse(raw); } catch { return; }
  if (msg.type === "snapshot") {
    for (const id of Object.keys(printers)) delete printers[id];
    Object.assign(printers, msg.printers);
    render();
  } else if (msg.type === "delta" && printers[msg.printer]) {
    printers[msg.printer] = applyMergePatch(printers[msg.printer], msg.changes);
    render();
  } else if (msg.type === "event") {
    addEvent(msg);
  } else if (msg.type === "panel") {
    showPanel(msg);
  }
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  socket = new WebSocket(url);
  socket.onopen = () => {
    everConnected = true;
    backoff = BACKOFF_MIN_S;
    lastMessageAt = Date.now();
    showLink(null);
  };
  socket.onmessage = (e) => onMessage(e.data);
  socket.onclose = () => {
    socket = null;
    const wait = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(BACKOFF_MAX_S, backoff * 2);
    retryAt = Date.now() + wait * 1000;
    setTimeout(connect, wait * 1000);
    tick();
  };
}

// Every second: the "ago" and ETA texts, the dead-link watchdog and the "connection lost" banner.
function tick() {
  if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastMessageAt > DEAD_AFTER_S * 1000) {
    socket.close();  // silent for too long: treat as dead, onclose reconnects
  }
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    if (everConnected || !socket) {
      const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      showLink(`⚠ Connection to the box lost, reconnecting${socket ? "…" : ` in ${s} s`}. Values shown may be old.`);
    }
  }
  if (Object.keys(printers).length) render();
}

// The virtual panel (another part of the box) lives at /api/panel; shown only when the box serves it.
function showPanel(panel) {
  const el = document.getElementById("panel");
  if (el.hidden) {
    el.innerHTML = `<h2>Box panel</h2><img alt="The box's screen" width="512" height="256"
      src="/api/panel.png?t=${Date.now()}"><div class="leds"></div>`;
    el.hidden = false;
  }
  const leds = Object.entries(panel.leds || {}).map(([name, led]) =>
    `<span>${esc(name)}: ${esc((led && led.mode) || "off")}</span>`);
  const buzzer = panel.buzzer && panel.buzzer.active ? ["<span>buzzer: sounding</span>"] : [];
  el.querySelector(".leds").innerHTML = leds.concat(buzzer).join("");
  // Swap the picture only once the new one has loaded, so it never blinks empty.
  const next = new Image();
  next.onload = () => { el.querySelector("img").src = next.src; };
  next.src = `/api/panel.png?t=${Date.now()}`;
}

async function probePanel() {
  try {
    const r = await fetch("/api/panel", { cache: "no-store" });
    if (r.ok) {
      showPanel(await r.json());
      setTimeout(probePanel, PANEL_REFRESH_MS);
    }
  } catch {
    setTimeout(probePanel, PANEL_REFRESH_MS);  // the box is restarting: ask again
  }
}

window.bambupi = { printers, applyMergePatch };
document.getElementById("printers").addEventListener("click", onControl);
document.getElementById("printers").addEventListener("change", onControl);
loadSession();
connect();
setInterval(tick, 1000);
probePanel();
