// The dashboard: one card per printer, kept live over /ws (snapshot, then merge-patch deltas and events).
// No framework and no build step. Each card is built once; afterwards only the parts whose text changed are
// patched, and never a part that holds the keyboard focus or the person's text selection (a phone's speed picker
// would close, a selection would vanish). Render functions turn values into HTML text, everything escaped.
"use strict";

const HEARTBEAT_S = 15;            // the box sends something at least this often
const DEAD_AFTER_S = HEARTBEAT_S * 2.5;
const STALE_AFTER_S = 30;          // "last update" turns yellow
const BACKOFF_MIN_S = 0.5, BACKOFF_MAX_S = 10;
const MAX_EVENTS = 20;
const PANEL_REFRESH_MS = 3000;

const printers = {};               // id -> printer object, exactly what the box sent (null == missing)
const stats = { messages: 0 };     // WebSocket messages taken, for anyone watching the page work
let socket = null, lastMessageAt = 0, backoff = BACKOFF_MIN_S, retryAt = 0, everConnected = false;

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
// An icon from the frame's sprite (templates/icons.html): no emoji, which render as empty boxes without an emoji font.
const ic = (name) => `<svg class="icon" aria-hidden="true" focusable="false"><use href="#i-${name}"/></svg>`;
const num = (value, digits = 0) => (typeof value === "number" ? value.toFixed(digits) : "–");
const safeColor = (c) => (/^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(c || "") ? c.slice(0, 7) : "transparent");

// "Online" means reports are arriving; the other states say the values shown are the last ones seen.
// The second of each pair is the icon beside the word (the word alone carries the meaning; colour never does).
const CONNECTION = {
  online: ["Online", "live"], connecting: ["Connecting", "clock"], stale: ["Reconnecting — no data", "warn"],
  offline: ["Offline", "close"],
};
const STATES = {
  RUNNING: ["Printing", "play"], PAUSE: ["Paused", "pause"], FINISH: ["Finished", "check"], FAILED: ["Failed", "close"],
  IDLE: ["Idle", "printer"], PREPARE: ["Preparing", "clock"], SLICING: ["Slicing", "clock"], INIT: ["Starting", "clock"],
  UNKNOWN: ["Unknown", "warn"],
};
const SPEEDS = { 1: "Silent", 2: "Standard", 3: "Sport", 4: "Ludicrous" };
const IN_JOB = ["preparing", "printing", "paused"];  // phases of an unfinished job (bambupi/printer/phase.py)

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
  if (n === 16) return "AMS lite"; // the A2L's
  return `AMS ${String.fromCharCode(65 + n)}`;
}

// -- the parts of a card, each a pure function of the printer object --------------------------------------------

function renderConnection(p) {
  const [word, symbol] = CONNECTION[p.connection] || [p.connection, "warn"];
  return `<span class="pill c-${esc(p.connection)}" data-field="connection">${ic(symbol)}${esc(word)}</span>`;
}

function renderStatus(p) {
  const s = p.state || {};
  const result = s.job_result;
  let word;
  if (result && result.outcome === "cancelled") {
    word = `<span class="word cancelled" data-field="state">${ic("stop")} ${esc(result.text)}</span>`;
  } else if (result && result.outcome === "pending") {
    // FAILED without an error yet: a stop's first report. Not a failure until the box knows (hms.job_result).
    word = `<span class="word" data-field="state">${ic("clock")} ${esc(result.text)}</span>`;
  } else if (result) {
    word = `<span class="word failed" data-field="state">${ic("close")} ${esc(result.text)}</span>`;
  } else {
    const [text, symbol] = STATES[s.gcode_state] || ["Waiting for the printer", "clock"];
    word = `<span class="word" data-field="state">${ic(symbol)} ${esc(text)}</span>`;
  }
  const job = s.subtask_name ? `<span class="job" data-field="job">${esc(s.subtask_name)}</span>` : "";
  let seen = "";
  if (p.connection !== "online") {
    const when = p.last_report_at ? `last seen ${clock(new Date(p.last_report_at * 1000))}` : "no report yet";
    seen = `<span class="last-seen" data-field="last-seen">${esc(when)}</span>`;
  }
  return `${word}${job}${seen}`;
}

function renderProgress(p, now) {
  const s = p.state || {};
  // The phase is the box's one word for where a printer is in its job (bambupi/printer/phase.py).
  const active = IN_JOB.includes(p.phase);
  if (!active && p.phase !== "finished") return "";
  const pct = typeof s.percent === "number" ? Math.max(0, Math.min(100, s.percent)) : 0;
  const parts = [`<span class="pct" data-field="percent">${pct} %</span>`];
  if (s.total_layers) parts.push(`<span data-field="layer">Layer ${s.layer ?? 0} of ${s.total_layers}</span>`);
  // Time left and the finish time only while reports arrive: from an old report they would be a guess.
  const left = active && p.connection === "online" ? duration(s.remaining_min) : null;
  if (left) {
    parts.push(`<span>${left} left</span>`);
    parts.push(`<span>done at ${clock(new Date(now + s.remaining_min * 60000))}</span>`);
  }
  return `<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}"
    aria-label="Print progress"><span style="width:${pct}%"></span></div>
    <div class="progress-line">${parts.join("")}</div>`;
}

function grams(g) {
  return typeof g === "number" ? `${g < 10 ? g.toFixed(1) : Math.round(g)} g` : "? g";
}

function trayName(t) {
  if (!t) return "";
  return t.external ? "external spool" : `${amsName(String(t.ams))} slot ${Number(t.tray) + 1}`;
}

// The job's filament from its 3MF (printer.job_file): used of planned grams, live while it prints, then final.
function renderGrams(p) {
  const f = p.job_file;
  if (!f) return "";
  if (f.status === "fetching") {
    return `<div class="grams muted" data-field="grams">Filament: reading the job's file…</div>`;
  }
  if (f.status !== "ready") {
    return `<div class="grams muted" data-field="grams">${esc(f.reason || "grams unknown")}</div>`;
  }
  const each = (f.filaments || []).map((x) => `<span class="filament" title="${esc(trayName(x.tray))}">
    <span class="swatch" style="background:${safeColor(x.colour)}"></span>${esc(x.material)}
    <span class="num">${grams(x.used_g)} / ${grams(x.planned_g)}</span></span>`);
  return `<div class="grams" data-field="grams"><span>Filament <b class="num" data-field="grams-used">${grams(f.used_g)}</b>
    of <span class="num" data-field="grams-planned">${grams(f.planned_g)}</span></span>${each.join("")}</div>`;
}

function temp(label, value, target, field) {
  const aim = typeof target === "number" && target > 0 ? ` / ${num(target)}` : "";
  return `<div class="temp" data-field="${field}"><span class="label">${esc(label)}</span>
    <span class="value">${num(value)}${aim} °C</span></div>`;
}

function renderTemps(p) {
  const s = p.state || {};
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
  return cells.join("");
}

function tray(label, t, active) {
  if (!t || t.empty) {
    return `<div class="tray${active ? " active" : ""}"><span class="swatch empty"></span>
      <span class="tag">${esc(label)}</span><br><span class="muted">empty</span></div>`;
  }
  // null is "not measured" (no RFID tag and no estimate, or an external spool): unknown, never 0 %.
  const remain = typeof t.remain === "number" && t.remain >= 0
    ? `<span class="num">${t.remain} %</span>`
    : '<span class="num muted" title="remaining filament unknown">? %</span>';
  return `<div class="tray${active ? " active" : ""}" title="${esc(t.color || "")}">
    <span class="swatch" style="background:${safeColor(t.color)}"></span>
    <span class="tag">${active ? ic("play") : ""}${esc(label)}</span> ${esc(t.type || "?")}<br>
    ${remain}${active ? '<br><span class="muted">in use</span>' : ""}</div>`;
}

// External holders by id: 255 feeds the right (main) extruder, 254 the left one on dual-nozzle printers.
function externalSpools(s) {
  const holders = Object.entries(s.external_spools || {}).sort(([a], [b]) => Number(a) - Number(b));
  const at = s.active_tray || {};
  return holders.map(([id, t]) => {
    const label = holders.length > 1 ? (id === "254" ? "Left" : "Right") : "Ext";
    const active = Boolean(at.external) && (at.id == null || holders.length === 1 || String(at.id) === id);
    return tray(label, t, active);
  });
}

function renderAms(p) {
  const s = p.state || {};
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
  const external = externalSpools(s);
  if (external.length) {
    html += `<div class="ams-unit" data-field="external-spools"><div class="unit-head">External spool${
      external.length > 1 ? "s" : ""}</div><div class="trays">${external.join("")}</div></div>`;
  }
  return html ? `<h3>Filament</h3>${html}` : "";
}

// The headline counts what needs the person; silent codes (hms.js) are only listed in the details.
function renderHmsSummary(p) {
  const all = HMS.sorted((p.state || {}).hms || []);
  const alarming = all.filter(HMS.alarming);
  if (!alarming.length) {
    const quiet = all.length ? ` · ${all.length} code${all.length > 1 ? "s" : ""}, no action needed` : "";
    return `<span class="pill s-ok" data-field="hms">${ic("check")}HMS OK${quiet}</span>`;
  }
  const worst = HMS.tone(alarming[0]);
  const count = alarming.length === 1 ? "1 error" : `${alarming.length} errors`;
  return `<span class="pill s-${worst}" data-field="hms">${ic("warn")}HMS: ${count}, ${esc(worst)}</span>`;
}

function renderHmsList(p) {
  const hms = (p.state || {}).hms || [];
  if (!hms.length) return `<li class="muted">No errors reported.</li>`;
  return HMS.sorted(hms).map(HMS.item).join("");
}

// What went wrong with the job, in the box's words (the official text), what to do about it, and the code, smaller.
// A job that failed says "Failed: <text>" in its state word already; an error during a job (filament ran out…) says
// its text here. A cancel is the owner's choice: nothing to explain.
function renderPrintError(p) {
  const s = p.state || {};
  const result = s.job_result;
  if (!s.print_error || (result && result.outcome !== "failed")) return "";
  const text = result ? "" : `<span class="text">${ic("warn")} ${esc(s.print_error_text || s.print_error)}</span>`;
  const action = s.print_error_action ? `<span class="action" data-field="print-error-action">${esc(s.print_error_action)}</span>` : "";
  return `<div class="print-error${result ? " failed" : ""}" data-field="print-error">${text}${action}<span
    class="code num">Error code ${esc(s.print_error)}</span></div>`;
}

function wifi(dbm) {
  if (typeof dbm !== "number") return null;
  const quality = dbm >= -55 ? "strong" : dbm >= -67 ? "good" : dbm >= -75 ? "weak" : "poor";
  return `Wi-Fi ${dbm} dBm (${quality})`;
}

function renderFacts(p) {
  const s = p.state || {};
  const facts = [];
  // Only models with a door sensor say anything (null: no sensor, or nothing reported yet).
  if (s.door_open === true) facts.push(`<span class="notice" data-field="door">${ic("warn")} Door open</span>`);
  else if (s.door_open === false) facts.push(`<span data-field="door">Door closed</span>`);
  const w = wifi(s.wifi_dbm);
  if (w) facts.push(`<span class="num">${w}</span>`);
  if (s.speed_level) facts.push(`<span>Speed: ${esc(SPEEDS[s.speed_level] || s.speed_level)}</span>`);
  return facts.join("");
}

function renderAgo(p, now) {
  if (!p.last_report_at) return `<span class="ago stale" data-field="ago">no report yet</span>`;
  const seconds = now / 1000 - p.last_report_at;
  const stale = seconds > STALE_AFTER_S;
  return `<span class="ago${stale ? " stale" : ""}" data-field="ago">${stale ? ic("warn") : ""}updated ${ago(seconds)}</span>`;
}

// The camera page plays the relay and reconnects by itself; the card only leads there (also while the camera
// idles: the page wakes it up). A camera switched off in the config has nothing to show.
function renderFoot(p) {
  const c = p.camera || {};
  const id = encodeURIComponent(p.id);
  let camera;
  if (!c.status || c.status === "disabled") {
    camera = `<span class="camera" data-field="camera">Camera: ${esc(c.status || "unknown")}</span>`;
  } else {
    const why = c.reason ? ` title="${esc(c.reason)}"` : "";
    camera = `<a class="camera" data-field="camera" href="/camera#camera-${id}"${why}>${ic("camera")}Camera (${esc(c.status)})</a>`;
  }
  const plug = power[p.id] && power[p.id].plug ? `<a href="/power" data-field="power">${ic("plug")}${esc(plugWords(power[p.id]))}</a>` : "";
  return `${camera}${plug}<a href="/printers/${id}/mqtt">${ic("log")}MQTT log</a>`;
}

// -- the card's live picture, plate, plug and auto-off --------------------------------------------------------------

// While a job runs the card shows the camera at a low rate: one snapshot.jpg every LIVE_MS, only while the page is
// in view. The box's relay holds the printer's one camera connection and fans it out, so the card costs the printer
// nothing more than the camera page does. A tap opens the camera page at this printer.
const LIVE_MS = 5000;
const POWER_REFRESH_MS = 10000;
const power = {};                  // id -> GET /api/power's entry (plug, reading, auto_off); empty without plugs
let powerServed = true;            // false once the box answered 404 (no power part): asked no more
const liveBusy = new Set();        // printers whose snapshot is on its way
const liveUrls = {};               // printer id -> object URL shown (revoked when replaced)

function renderLive(p) {
  const c = p.camera || {};
  if (!IN_JOB.includes(p.phase) || !c.status || ["disabled", "off"].includes(c.status)) return "";
  const id = encodeURIComponent(p.id);
  return `<a class="live-pic" data-field="live" href="/camera#camera-${id}" aria-label="Camera of ${esc(p.name)}: open the
    camera page"><img alt="" data-live="${esc(p.id)}"><span class="badge">${ic("camera")}<span class="live-word">camera…</span></span></a>`;
}

async function refreshLive(img) {
  const id = img.dataset.live;
  // Refused (a login needed, or the camera not shared with this person's role): asked again once the session changes.
  if (liveBusy.has(id) || img.dataset.refused === String(session.csrf)) return;
  liveBusy.add(id);
  const word = img.parentElement.querySelector(".live-word");
  try {
    const r = await fetch(`/api/printers/${encodeURIComponent(id)}/snapshot.jpg`, { cache: "no-store" });
    if (r.ok) {
      const url = URL.createObjectURL(await r.blob());
      img.src = url;
      if (liveUrls[id]) URL.revokeObjectURL(liveUrls[id]);
      liveUrls[id] = url;
      img.alt = `Camera picture of ${printers[id] ? printers[id].name : id}, ${clock(new Date())}`;
      word.textContent = `live · ${clock(new Date())}`;
    } else if (r.status === 401 || r.status === 403) {
      word.textContent = r.status === 401 ? "log in to see the camera" : "the camera is not shared with you";
      img.dataset.refused = String(session.csrf);
    } else {
      word.textContent = "no picture now";
    }
  } catch {
    word.textContent = "no picture now";
  } finally {
    liveBusy.delete(id);
  }
}

function refreshLives() {
  if (document.visibilityState !== "visible") return;
  for (const img of document.querySelectorAll("#printers img[data-live]")) refreshLive(img);
}

// The plate's picture from the job's file (the history keeps it): beside the job's name.
function renderPlate(p) {
  const f = p.job_file;
  if (!f || !f.thumbnail || !(IN_JOB.includes(p.phase) || p.phase === "finished")) return "";
  const name = (p.state || {}).subtask_name || "the job";
  return `<a href="/history/${encodeURIComponent(f.job_id)}" class="plate-link"><img class="plate" src="${esc(f.thumbnail)}"
    width="64" height="64" alt="Plate of ${esc(name)}: open the print in the history"></a>`;
}

function plugWords(entry) {
  const reading = entry.reading || {};
  const state = reading.on === true ? "on" : reading.on === false ? "off" : "unknown";
  const watts = typeof reading.watts === "number" ? ` · ${Math.round(reading.watts)} W` : "";
  return `Plug ${state}${watts}`;
}

function countdown(offAt, now) {
  const left = Math.max(0, Math.round(offAt - now / 1000));
  if (left === 0) return "switching off now";
  const m = Math.floor(left / 60), sec = String(left % 60).padStart(2, "0");
  return `off in ${m}:${sec} (at ${clock(new Date(offAt * 1000))})`;
}

// Auto-off armed after a print: the countdown (ticking in place, see updateCard) and its Cancel for who may.
function renderAutoOff(p) {
  const auto = power[p.id] && power[p.id].auto_off;
  if (!auto || !auto.armed || typeof auto.off_at !== "number") return "";
  const may = session.logged_in && session.role !== "viewer";
  const cancel = may ? `<button type="button" data-auto-off-cancel="${esc(p.id)}">${ic("close")}<span>Cancel auto-off</span></button>` : "";
  return `<div class="auto-off" data-field="auto-off">${ic("plug")}<span>Plug <span class="countdown"
    data-off-at="${Math.round(auto.off_at)}"></span></span>${cancel}</div>`;
}

async function loadPower() {
  if (!powerServed) return;
  try {
    const r = await fetch("/api/power?hours=0.1", { cache: "no-store" });
    if (r.status === 404) { powerServed = false; return; }
    if (!r.ok) return;
    const body = await r.json();
    for (const id of Object.keys(power)) delete power[id];
    Object.assign(power, body.printers || {});
    if (Object.keys(printers).length) render();
  } catch { /* the box is restarting: asked again at the next turn */ }
}

async function cancelAutoOff(id) {
  commandStatus[id] = "auto-off: cancelling…";
  render();
  try {
    const r = await fetch(`/api/printers/${encodeURIComponent(id)}/auto-off/cancel`, {
      method: "POST", headers: { "X-CSRF-Token": session.csrf || "" } });
    const body = await r.json();
    if (r.status === 401) setSession({ logged_in: false, csrf: null });
    if (!r.ok) commandStatus[id] = `auto-off: ${body.error || r.status}`;
    else commandStatus[id] = body.cancelled ? "auto-off cancelled: the plug stays on"
      : `auto-off: nothing to cancel (${(body.auto_off && body.auto_off.reason) || "not armed"})`;
  } catch {
    commandStatus[id] = "auto-off: the box did not answer";
  }
  // The pressed Cancel holds the focus, which keeps its part of the card as it is (patch): let go, it is done.
  if (document.activeElement && document.activeElement.dataset.autoOffCancel) document.activeElement.blur();
  await loadPower();
  render();
}

// Controls need the owner's session; the box refuses them without it, the page only mirrors that.
let session = { logged_in: false, csrf: null };
const commandStatus = {};          // printer id -> text of the last command's outcome
const armedStop = {};              // printer id -> time until which "Stop" waits for its confirmation
const CONTROLS_OFF = "Controls unavailable: this printer refuses commands from other apps. Turn on LAN Only mode " +
  "and Developer mode on the printer (Settings → Network); watching works either way.";
const COMMAND_REFUSED = "The printer refused a command: enable Developer mode (with LAN Only mode) on the printer, " +
  "then try again.";

// The controls as data: they are kept as elements and updated in place, so a focused picker stays open.
function controlsOf(p) {
  const s = p.state || {};
  const disabled = !(p.controls_available && p.connection === "online");
  const controls = [];
  const add = (command, icon, text) => controls.push({ key: command, command, icon, text, disabled });
  if (p.phase === "printing") add("pause", "pause", "Pause");
  if (p.phase === "paused") add("resume", "play", "Resume");
  if (IN_JOB.includes(p.phase)) {
    if ((armedStop[p.id] || 0) > Date.now()) add("stop", "warn", "Tap again to stop the print");
    else add("stop", "stop", "Stop");
  }
  const lightOn = (s.lights || {}).chamber_light === "on";
  controls.push({ key: "light", command: lightOn ? "light_off" : "light_on", icon: "light",
    text: lightOn ? "Light off" : "Light on", disabled });
  if (p.phase === "printing") controls.push({ key: "speed", command: "speed", level: s.speed_level, disabled });
  return controls;
}

function makeControl(id, c) {
  if (c.command === "speed") {
    const label = document.createElement("label");
    label.className = "speed";
    label.dataset.key = c.key;
    const options = Object.entries(SPEEDS).map(([level, name]) => `<option value="${level}">${name}</option>`);
    label.innerHTML = `Speed <select data-printer="${esc(id)}" data-command="speed">${options.join("")}</select>`;
    return label;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.key = c.key;
  button.dataset.printer = id;
  return button;
}

function updateControl(el, c) {
  if (c.command === "speed") {
    const select = el.querySelector("select");
    select.disabled = c.disabled;
    const value = c.level ? String(c.level) : "";
    // The printer's value, except while the person is choosing one.
    if (document.activeElement !== select && select.value !== value) select.value = value;
    return;
  }
  if (el.dataset.command !== c.command) el.dataset.command = c.command;
  if (el.textContent !== c.text) el.innerHTML = `${ic(c.icon)}<span>${esc(c.text)}</span>`;
  if (el.disabled !== c.disabled) el.disabled = c.disabled;
}

function patchControls(box, p) {
  if (!session.logged_in) {
    patch(box, `<a class="btn" href="/login">${ic("login")}Log in to control the printer</a>`);
    return;
  }
  if (session.role === "viewer") {  // the box refuses a viewer's commands (bambupi/web/login.py's Guard)
    patch(box, `<p class="muted viewer-only">You are signed in as a viewer: watching only, no controls.</p>`);
    return;
  }
  const wanted = controlsOf(p);
  const keys = new Set(wanted.map((c) => c.key));
  for (const el of [...box.children]) if (!keys.has(el.dataset.key)) el.remove();
  shown.delete(box);
  let previous = null;
  for (const c of wanted) {
    let el = [...box.children].find((child) => child.dataset.key === c.key);
    if (!el) el = makeControl(p.id, c);
    if ((previous ? previous.nextElementSibling : box.firstElementChild) !== el) {
      if (previous) previous.after(el); else box.prepend(el);
    }
    updateControl(el, c);
    previous = el;
  }
}

function renderOutcome(p) {
  const why = p.controls_available || !session.logged_in ? "" : `<p class="muted controls-off">${esc(CONTROLS_OFF)}</p>`;
  // A latch, not a block: the owner can try again (the printer accepts commands once Developer mode is on).
  const refused = p.controls_available && p.commands_refused && session.logged_in
    ? `<p class="muted controls-refused">${esc(COMMAND_REFUSED)}</p>` : "";
  const outcome = commandStatus[p.id] && session.logged_in
    ? `<p class="command-status" role="status">${esc(commandStatus[p.id])}</p>` : "";
  return why + refused + outcome;
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
    if (r.status === 401) setSession({ logged_in: false, csrf: null });
    const why = body.error || `${body.result}${body.reason ? ` (${body.reason})` : ""}`;
    commandStatus[id] = r.ok ? `${command}: ${body.result} (the printer confirmed)` : `${command}: ${why}`;
  } catch {
    commandStatus[id] = `${command}: the box did not answer`;
  }
  render();
}

function onControl(event) {
  const cancel = event.target.closest("[data-auto-off-cancel]");
  if (cancel && event.type === "click") { cancelAutoOff(cancel.dataset.autoOffCancel); return; }
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

// -- keeping the page in step without taking anything away from the person ---------------------------------------

const shown = new WeakMap();       // element -> the HTML it shows

function holdsPerson(el) {
  // Focus on the element itself survives new content; focus inside it would be lost with the old children.
  const active = document.activeElement;
  if (active && active !== el && el.contains(active)) return true;
  const selection = document.getSelection();
  return Boolean(selection && !selection.isCollapsed && selection.rangeCount && selection.containsNode(el, true));
}

function patch(el, html) {
  if (shown.get(el) === html || holdsPerson(el)) return;  // held: the next tick tries again
  el.innerHTML = html;
  shown.set(el, html);
}

const CARD = `<div class="card-grid"><div class="card-head"><div><h2 data-slot="name"></h2><span class="model muted" data-slot="model"></span></div>
  <details class="conn"><summary data-slot="connection"></summary><p class="reason muted" data-slot="reason"></p></details></div>
  <div class="plate-slot" data-slot="plate"></div>
  <div class="status" data-slot="status"></div><div data-slot="print-error"></div><div data-slot="progress"></div>
  <div data-slot="live"></div><div data-slot="grams"></div><div data-slot="auto-off"></div>
  <div class="controls" data-field="controls" data-slot="controls"></div><div data-slot="outcome"></div>
  <div class="temps" data-slot="temps"></div>
  <details class="hms"><summary data-slot="hms-summary"></summary><ul class="hms-list" data-slot="hms-list"></ul></details>
  <div data-slot="ams"></div>
  <div class="facts"><span class="slot" data-slot="facts"></span><span class="slot" data-slot="ago"></span></div>
  <div class="card-foot" data-slot="foot"></div></div>`;

const SLOTS = {
  name: (p) => esc(p.name),
  model: (p) => esc(p.model),
  connection: renderConnection,
  reason: (p) => esc(p.connection_reason || "No problem reported."),
  plate: renderPlate,
  status: renderStatus,
  "print-error": renderPrintError,
  progress: renderProgress,
  live: renderLive,
  grams: renderGrams,
  "auto-off": renderAutoOff,
  outcome: renderOutcome,
  temps: renderTemps,
  "hms-summary": renderHmsSummary,
  "hms-list": renderHmsList,
  ams: renderAms,
  facts: renderFacts,
  ago: renderAgo,
  foot: renderFoot,
};

function updateCard(card, p, now) {
  if (card.dataset.connection !== p.connection) card.dataset.connection = p.connection;
  card.classList.toggle("offline", p.connection === "offline");
  for (const [name, draw] of Object.entries(SLOTS)) patch(card.querySelector(`[data-slot="${name}"]`), draw(p, now));
  patchControls(card.querySelector('[data-slot="controls"]'), p);
  for (const el of card.querySelectorAll(".countdown[data-off-at]")) {
    const text = countdown(Number(el.dataset.offAt), now);
    if (el.textContent !== text) el.textContent = text;
  }
  const img = card.querySelector("img[data-live]:not([data-asked])");
  if (img) {  // a picture at once when the live view appears, then every LIVE_MS
    img.dataset.asked = "yes";
    refreshLive(img);
  }
}

function render() {
  const main = document.getElementById("printers");
  const now = Date.now();
  const ids = Object.keys(printers);
  if (!ids.length) {
    patch(main, `<p class="muted">No printers configured. Add one in <a href="/settings">Settings</a>.</p>`);
    return;
  }
  shown.delete(main);
  for (const child of [...main.children]) if (!(child.dataset.printer in printers)) child.remove();
  for (const id of ids) {
    let card = [...main.children].find((child) => child.dataset.printer === id);
    if (!card) {
      card = document.createElement("article");
      card.className = "card";
      card.dataset.printer = id;
      card.innerHTML = CARD;
      main.appendChild(card);
    }
    updateCard(card, printers[id], now);
  }
}

// -- recent events: new ones go on top, the old rows are left alone --------------------------------------------

function renderEvent(e) {
  const at = typeof e.at === "number" ? clock(new Date(e.at * 1000)) : "";
  const who = printers[e.printer] ? printers[e.printer].name : e.printer;
  const job = e.job ? ` ${e.job}` : "";
  const words = {
    job_started: `started ${e.job || "a print"}`, job_joined: `printing ${e.job || "a print"} (already under way)`,
    job_finished: `finished ${e.job || "the print"}`,
    job_failed: `${e.result || "Failed"}${job ? ` (${e.job})` : ""}`,
    job_cancelled: `${e.result || "Cancelled"}${job ? ` (${e.job})` : ""}`,
    job_paused: "paused", job_resumed: "resumed",
    job_ending_soon: `${e.job || "the print"} done in ${typeof e.remaining_min === "number" ? e.remaining_min : "a few"} min`,
    hms_raised: e.hms && e.hms.silent ? `HMS (no action needed): ${HMS.description(e.hms)}`
      : `HMS ${e.severity || ""}: ${(e.hms && e.hms.description) || e.code}`,
    hms_cleared: `HMS cleared: ${(e.hms && e.hms.description) || e.code}`,
    connection_lost: `connection lost${e.reason ? ` (${e.reason})` : ""}`, connection_restored: "back online",
    events_lost: `${e.count} events missed`,
    power_warning: e.message, power_off: e.message, power_check: e.message, filament_low: e.message,
  };
  const warn = ["power_warning", "power_check", "filament_low"].includes(e.kind) ? ic("warn") : "";
  return `<li><time>${esc(at)}</time> ${esc(who || "")}: ${warn}${esc(words[e.kind] || e.kind)}</li>`;
}

function addEvent(e) {
  const list = document.getElementById("events");
  for (const placeholder of list.querySelectorAll(".muted")) placeholder.remove();
  list.insertAdjacentHTML("afterbegin", renderEvent(e));
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

// The box's recent events (oldest first), sent with a connection's first snapshot: they replace the list.
function showEvents(events) {
  const list = document.getElementById("events");
  list.innerHTML = events.length ? "" : `<li class="muted">None yet.</li>`;
  for (const e of events.slice(-MAX_EVENTS)) addEvent(e);
}

function showLink(text) {
  const el = document.getElementById("link");
  el.hidden = !text;
  if (el.textContent !== (text ? ` ${text}` : "")) el.innerHTML = text ? `${ic("warn")} ${esc(text)}` : "";
  // While the box is unreachable the cards show its last word: greyed, so nobody mistakes them for live.
  document.getElementById("printers").classList.toggle("old", Boolean(text));
}

// Parts of the box that stopped working (a {"type": "health"} message lists them until they run again): a line each.
const PART_NAMES = {
  links: "Printer connection", camera: "Camera relay", power: "Smart plug", notify: "Notifications", panel: "Panel",
  discovery: "Printer discovery", alerts: "Quiet hours", hms_texts: "HMS texts download", system: "System",
  web: "Web page",
};
let failing = [];                  // what the last health message listed, with retry_at on this page's clock

function showHealth(parts) {
  const now = Date.now();
  failing = parts.map((part) => ({
    ...part, retry_at: typeof part.retry_in_s === "number" ? now + part.retry_in_s * 1000 : null,
  }));
  renderHealth(now);
}

function renderHealth(now) {
  const el = document.getElementById("health");
  el.hidden = !failing.length;
  patch(el, failing.map((part) => {
    const what = PART_NAMES[part.name] || part.name;
    const again = part.failures > 1 ? `, ${part.failures} times in a row` : "";
    const when = part.retry_at === null ? "restarting now…"
      : `restarting in ${Math.max(0, Math.ceil((part.retry_at - now) / 1000))} s`;
    return `<p data-part="${esc(part.name)}">${ic("warn")} ${esc(what)} stopped working (${
      esc(part.error || "error")}${again}) — ${esc(when)}</p>`;
  }).join(""));
}

function onMessage(raw) {
  lastMessageAt = Date.now();
  stats.messages += 1;
  let msg;
  try { msg = JSON.parse(raw); } catch { return; }
  if (msg.type === "snapshot") {
    for (const id of Object.keys(printers)) delete printers[id];
    Object.assign(printers, msg.printers);
    if (Array.isArray(msg.events)) {  // a connection's first: the box sends what is failing now right after it
      showEvents(msg.events);
      showHealth([]);
    }
    render();
  } else if (msg.type === "delta" && printers[msg.printer]) {
    printers[msg.printer] = applyMergePatch(printers[msg.printer], msg.changes);
    render();
  } else if (msg.type === "event") {
    addEvent(msg);
    if (String(msg.kind).startsWith("power_") || ["job_finished", "job_failed", "job_cancelled"].includes(msg.kind)) {
      loadPower();  // auto-off armed, warned or done: the card's countdown follows at once
    }
  } else if (msg.type === "health") {
    showHealth(Array.isArray(msg.failing) ? msg.failing : []);
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
      showLink(`Connection to the box lost, reconnecting${socket ? "…" : ` in ${s} s`}. Values shown may be old.`);
    }
  }
  if (Object.keys(printers).length) render();
  if (failing.length) renderHealth(Date.now());
}

// -- the owner's session: the frame (static/frame.js) asks /api/session, shows Log in or Log out and logs out;
// the dashboard follows it (its controls are the owner's). A 401 here says the session ended: the menu follows.

function setSession(next) {
  session = next;
  document.getElementById("login-link").hidden = Boolean(session.logged_in);
  document.getElementById("logout").hidden = !session.logged_in;
  if (!session.logged_in) for (const id of Object.keys(commandStatus)) delete commandStatus[id];
  if (Object.keys(printers).length) render();
}

// The virtual panel (another part of the box) lives at /api/panel; shown only when the box serves it.
function showPanel(panel) {
  const el = document.getElementById("panel");
  if (el.hidden) {
    el.innerHTML = `<h2>Box panel</h2><img alt="The box's screen" width="512" height="256"
      src="/api/panel.png?t=${Date.now()}"><div class="leds"></div>
      <button type="button" class="panel-button" hidden>Press the box's button</button>
      <p class="panel-press muted" role="status"></p>`;
    el.querySelector(".panel-button").addEventListener("click", pressPanelButton);
    el.hidden = false;
  }
  // An operator's, like the printers' controls (a viewer's press would be refused): a press acknowledges what the
  // screen shows (or pages on).
  el.querySelector(".panel-button").hidden = !session.logged_in || session.role === "viewer";
  const leds = Object.entries(panel.leds || {}).map(([name, led]) =>
    `<span>${esc(name)}: ${esc((led && led.mode) || "off")}</span>`);
  const buzzer = panel.buzzer && panel.buzzer.active ? ["<span>buzzer: sounding</span>"] : [];
  // Night, a dark room or sleep: the picture is drawn as dim as the screen (/api/panel.png); the words say why.
  const light = panel.brightness || {};
  const lightWords = { night: "night: dimmed", room: "dimmed to the room's light", asleep: "asleep (printers off)" };
  const dimmed = light.mode === "room" && light.leds >= 1 ? [] :
    (lightWords[light.mode] ? [`<span class="brightness">${esc(lightWords[light.mode])}</span>`] : []);
  patch(el.querySelector(".leds"), leds.concat(buzzer, dimmed).join(""));
  // Swap the picture only once the new one has loaded, so it never blinks empty.
  const next = new Image();
  next.onload = () => { el.querySelector("img").src = next.src; };
  next.src = `/api/panel.png?t=${Date.now()}`;
}

async function pressPanelButton() {
  const said = document.querySelector("#panel .panel-press");
  try {
    const r = await fetch("/api/panel/button", { method: "POST", headers: { "X-CSRF-Token": session.csrf || "" } });
    if (r.status === 401) setSession({ logged_in: false, csrf: null });
    const body = await r.json();
    said.textContent = r.ok ? "" : (body.error || `the box answered ${r.status}`);
    if (r.ok) showPanel(body);
  } catch {
    said.textContent = "the box did not answer";
  }
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

window.bambupi = { printers, applyMergePatch, stats };
document.getElementById("printers").addEventListener("click", onControl);
document.getElementById("printers").addEventListener("change", onControl);
// A part held back for the person's focus or selection catches up as soon as they let go.
document.addEventListener("focusout", () => setTimeout(() => { if (Object.keys(printers).length) render(); }, 0));
window.addEventListener("bambupi:session", (event) => setSession(event.detail));
if (window.bambupiSession) setSession(window.bambupiSession);
connect();
setInterval(tick, 1000);
setInterval(refreshLives, LIVE_MS);
setInterval(loadPower, POWER_REFRESH_MS);
loadPower();
probePanel();
