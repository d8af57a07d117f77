// The settings page (/settings): a form built from GET /api/settings's schema, which comes from the config schema
// (bambupi/config/schema.py) with the words of bambupi/config/labels.py. Nothing here lists keys: each key's control
// (switch, number with unit, choice list, time range, password, text) and its label, help and default come with the
// schema. Saves go to POST /api/settings; its answer says what was applied at once and what needs a restart, shown in
// the save bar that stays at the bottom of the screen, and names each problem by key: the message goes next to its
// field, scrolled into view.
"use strict";

const MASK = "********";
const KEEP = "unchanged (type to replace)";
const MOVED = "type it again: where it is sent changed";
const ENTRY_NOUN = {printer: "printer", notify: "channel"};
const ADD_TEXT = {printer: "Add a printer", notify: "Add a channel"};
// How a choice reads on the page (the value itself where none is given here).
const CHOICE_TEXT = {
  tasmota: "Tasmota", shelly1: "Shelly Gen1", shelly2: "Shelly Gen2+ (Plus, Pro)", homeassistant: "Home Assistant switch",
  ntfy: "ntfy", pushover: "Pushover", telegram: "Telegram", discord: "Discord", webhook: "Webhook (your own server)",
  ending_soon: "ending soon", hms: "printer errors (HMS)", power: "power (plug)", filament: "filament low",
};
const NO_PLUG = "No smart plug";

let csrf = null, data = null;
let added = 0;  // boxes added on the page get fresh prefixes, so no two inputs share an id
const status = document.getElementById("status");
const dirty = document.getElementById("dirty");
const submit = document.querySelector("#form button[type=submit]");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const shown = (value) => value === null || value === undefined ? "" : String(value);

// --- one field per key ------------------------------------------------------------------------------------------

// A field: its row on the page, and read() -> the value to send (undefined: leave the key out, a kept secret).
// A field the person did not touch sends the file's value as it was read, so a save changes only what was changed.
function makeField(prefix, key, value, spec) {
  const info = spec.fields[key] || {label: key, help: "", unit: "", control: "text"};
  const id = `${prefix}.${key}`;
  const required = spec.required.includes(key);
  const row = el("div", {class: `field field-${info.control}`, dataset: {key}});
  const error = el("div", {class: "error", id: `${id}-error`, dataset: {errorFor: id}, role: "alert"});
  const help = info.help ? el("p", {class: "help", id: `${id}-help`}, info.help) : null;
  const describedBy = [help ? help.id : null, error.id].filter(Boolean).join(" ");
  const labelText = [info.label, required ? el("span", {class: "req"}, " (required)") : null];
  const field = {key, info, row, secretKey: spec.secret.includes(key)};
  let control;

  switch (info.control) {
    case "switch": {
      control = el("input", {type: "checkbox", id, role: "switch", dataset: {key}, "aria-describedby": describedBy});
      control.checked = value === null || value === undefined ? Boolean(info.default) : Boolean(value);
      const start = control.checked;
      const word = el("span", {class: "switch-word", "aria-hidden": "true"});
      const say = () => { word.textContent = control.checked ? "On" : "Off"; };
      control.addEventListener("change", say);
      say();
      row.append(el("label", {class: "switch-row", htmlFor: id}, el("span", {class: "label"}, ...labelText),
        el("span", {class: "switch-end"}, word, control)));
      field.changed = () => control.checked !== start;
      field.read = () => field.changed() ? control.checked : value;
      break;
    }
    case "number": {
      control = el("input", {
        type: "number", id, dataset: {key}, "aria-describedby": describedBy,
        inputMode: info.whole ? "numeric" : "decimal", step: info.whole ? "1" : "any",
        min: info.min, max: info.max, placeholder: info.default !== undefined ? `default ${info.default}` : "",
      });
      control.value = shown(value);
      const start = control.value;
      field.changed = () => control.value !== start || control.validity.badInput;
      field.bad = () => control.validity.badInput ? "must be a number" : "";
      field.read = () => !field.changed() ? value : control.value === "" ? null : Number(control.value);
      row.append(el("label", {htmlFor: id}, ...labelText),
        el("div", {class: "with-unit"}, control, info.unit ? el("span", {class: "unit"}, info.unit) : null));
      break;
    }
    case "choice": {
      control = el("select", {id, dataset: {key}, "aria-describedby": describedBy});
      const choices = spec.choices[key] || [];
      const blank = key === "kind" && spec.isPlug ? NO_PLUG
        : required ? "Choose…" : info.default !== undefined ? `Default (${CHOICE_TEXT[info.default] || info.default})` : "Not set";
      control.append(el("option", {value: ""}, blank),
        ...choices.map((choice) => el("option", {value: choice}, CHOICE_TEXT[choice] || choice)));
      control.value = shown(value);
      const start = control.value;
      field.changed = () => control.value !== start;
      field.read = () => !field.changed() ? value : control.value === "" ? null : control.value;
      row.append(el("label", {htmlFor: id}, ...labelText), control);
      break;
    }
    case "choices": {  // a list whose items come from a fixed set: one checkbox each
      const current = new Set(Array.isArray(value) ? value : info.default || []);
      const boxes = (spec.choices[key] || []).map((choice) => el("input", {
        type: "checkbox", value: choice, checked: current.has(choice), id: `${id}.${choice}`,
      }));
      const pick = () => boxes.filter((box) => box.checked).map((box) => box.value);
      const start = pick();
      control = el("fieldset", {class: "choices", id, dataset: {key}, "aria-describedby": describedBy},
        el("legend", {}, ...labelText),
        ...boxes.map((box) => el("label", {htmlFor: box.id}, box, el("span", {}, CHOICE_TEXT[box.value] || box.value))));
      field.changed = () => !same(pick(), start);
      field.read = () => field.changed() ? pick() : value;
      row.append(control);
      break;
    }
    case "time_range": {  // "HH:MM-HH:MM" in the file: a From and a To time
      const [from, to] = typeof value === "string" && value.includes("-") ? value.split("-") : ["", ""];
      const fromInput = el("input", {type: "time", id, value: from, "aria-describedby": describedBy, dataset: {key}});
      const toInput = el("input", {type: "time", id: `${id}.to`, value: to, "aria-describedby": describedBy});
      const start = [fromInput.value, toInput.value];
      control = fromInput;
      field.changed = () => !same([fromInput.value, toInput.value], start);
      field.read = () => {
        if (!field.changed()) return value;
        return fromInput.value === "" && toInput.value === "" ? null : `${fromInput.value}-${toInput.value}`;
      };
      row.append(el("fieldset", {class: "time-range"}, el("legend", {}, ...labelText),
        el("label", {htmlFor: fromInput.id}, el("span", {}, "From"), fromInput),
        el("label", {htmlFor: toInput.id}, el("span", {}, "To"), toInput)));
      break;
    }
    case "password": {  // a secret: the stored value never reaches the page; empty keeps it
      control = el("input", {type: "password", id, dataset: {key, secret: "1"}, autocomplete: "new-password",
        "aria-describedby": describedBy, autocapitalize: "off", spellcheck: false});
      field.stored = value === MASK;
      if (field.stored) control.placeholder = KEEP;
      else if (value !== null && value !== undefined) control.value = String(value);  // shown by its kind (below)
      const start = control.value;
      field.changed = () => control.value !== start;
      field.read = () => {
        if (control.dataset.secret) return control.value === "" ? undefined : control.value;
        return !field.changed() ? (field.stored ? null : value) : control.value === "" ? null : control.value;
      };
      field.note = el("p", {class: "help keep"}, field.stored ? "Stored: leave empty to keep it." : "");
      row.append(el("label", {htmlFor: id}, ...labelText), control, field.note);
      break;
    }
    default: {  // text, and lists written comma-separated
      const list = info.control === "list";
      control = el("input", {type: "text", id, dataset: {key}, "aria-describedby": describedBy,
        autocapitalize: "off", spellcheck: false,
        placeholder: info.default !== undefined && info.default !== "" ? `default ${[].concat(info.default).join(", ")}` : ""});
      if (list) control.dataset.list = "1";
      if (info.suggestions) {  // offered, not imposed (a printer model newer than this box is taken too)
        const options = el("datalist", {id: `${id}-suggestions`}, ...info.suggestions.map((v) => el("option", {value: v})));
        control.setAttribute("list", options.id);
        row.append(options);
      }
      control.value = list ? (Array.isArray(value) ? value.join(", ") : "") : shown(value);
      const start = control.value;
      field.changed = () => control.value !== start;
      field.read = () => {
        if (!field.changed()) return value;
        if (control.value.trim() === "") return null;
        return list ? control.value.split(",").map((v) => v.trim()).filter(Boolean)
          .map((v) => /^\d+$/.test(v) ? Number(v) : v) : control.value;
      };
      row.append(el("label", {htmlFor: id}, ...labelText),
        info.unit ? el("div", {class: "with-unit"}, control, el("span", {class: "unit"}, info.unit)) : control);
    }
  }
  if (help) row.append(help);
  row.append(error);
  field.control = control;
  return field;
}

// --- boxes: a section, an entry of a list, a sub-table ---------------------------------------------------------

// Lays out a box's fields: the everyday ones, then the rarely changed ones under "More settings".
function fill(box, fields) {
  const main = el("div", {class: "fields"});
  const more = el("div", {class: "fields"});
  for (const field of fields) (field.info.advanced ? more : main).append(field.row);
  box.append(main);
  if (more.children.length) {
    const details = el("details", {class: "more"}, el("summary", {}, "More settings"), more);
    keepOpen(details, `more-${fields[0].control.id}`);
    box.append(details);
  }
}

// Only the fields of the chosen kind (a Tasmota plug has no Home Assistant token; an ntfy channel shows its server URL,
// a Discord one hides its URL, which carries its token).
function followKind(box, spec) {
  const kindField = box._fields.find((field) => field.key === "kind");
  if (!kindField || !Object.keys(spec.kinds).length) return;
  const specific = new Set(Object.values(spec.kinds).flatMap((kind) => [...kind.takes, ...kind.requires]));
  // Whether a field belongs to the kind chosen now (read again at the save, whatever changed the choice).
  box._belongs = (field) => {
    const kind = spec.kinds[kindField.control.value];
    if (field === kindField) return true;
    if (spec.isPlug && !kind) return false;  // a plug without a kind is no plug: nothing else to fill in
    return !specific.has(field.key) || Boolean(kind && [...kind.takes, ...kind.requires].includes(field.key));
  };
  const update = () => {
    const name = kindField.control.value;
    const kind = spec.kinds[name];
    for (const field of box._fields) {
      field.row.hidden = !box._belongs(field);
      if (field.secretKey) {
        const plain = Boolean(kind && kind.shown.includes(field.key));
        // An address shown for the old kind is no secret of the new one (an ntfy server is no Discord webhook):
        // the field empties for the secret to be typed, rather than send the address hidden behind dots.
        if (!plain && field.control.type === "text") field.control.value = "";
        field.control.type = plain ? "text" : "password";
        if (plain) delete field.control.dataset.secret; else field.control.dataset.secret = "1";
        field.control.placeholder = plain ? "" : field.stored ? KEEP : "";
        field.note.textContent = !plain && field.stored ? "Stored: leave empty to keep it." : "";
      }
    }
  };
  kindField.control.addEventListener("change", update);
  update();
}

// A stored secret never follows a changed destination (a printer's address or ports, a plug's address or kind, a
// channel's URL or kind, the home broker's address): the box refuses the save unless it is typed again, so the page
// says so as soon as one of them is edited, in the secret fields of the same box.
function watchDestinations(box, spec) {
  const destinations = box._fields.filter((field) => spec.destinations.includes(field.key));
  const stored = box._fields.filter((field) => field.stored && !spec.destinations.includes(field.key));
  const update = () => {
    const moved = destinations.some((field) => field.changed());
    for (const field of stored) {
      if (!field.control.dataset.secret) continue;
      field.control.placeholder = moved ? MOVED : KEEP;
      field.note.textContent = moved ? "Type it again: where it is sent changed." : "Stored: leave empty to keep it.";
    }
  };
  for (const field of destinations) {
    field.row.addEventListener("input", update);
    field.row.addEventListener("change", update);
  }
}

function build(box, prefix, values, spec, skip = () => false) {
  box._fields = Object.keys(spec.fields).filter((key) => !skip(key))
    .map((key) => makeField(prefix, key, (values || {})[key], spec));
  fill(box, box._fields);
  followKind(box, spec);
  watchDestinations(box, spec);
}

function itemBox(name, item, index) {
  const spec = data.schema[name];
  const box = el("fieldset", {class: `item item-${name}`, dataset: {prefix: `${name}[${index}]`}});
  // The entry's identity as read (absent for a new one): the save names the entry it edits by it, so its hidden
  // secrets stay with it whatever its position or name.
  if (item._ref) box.dataset.ref = item._ref;
  box.append(el("legend", {}, item.name || item.id || `New ${ENTRY_NOUN[name] || name}`),
    el("div", {class: "error", role: "alert", dataset: {errorFor: box.dataset.prefix}}));
  build(box, box.dataset.prefix, item, spec);
  for (const [sub, subSpec] of Object.entries(spec.tables || {})) box.append(subBox(box.dataset.prefix, sub, item[sub], subSpec));
  const row = el("div", {class: "row"});
  if (name === "printer" && item.id && data.pins[item.id] !== undefined) {
    row.append(el("button", {type: "button", onclick: () => trustPrinter(item.id)}, "Trust the printer's new certificate"));
    box.append(el("p", {class: "help"}, "Certificate: ", el("code", {}, data.pins[item.id] || "not pinned yet")));
  }
  if (name === "notify" && item.name) {
    row.append(el("button", {type: "button", onclick: () => testChannel(item.name)}, "Send a test notification"));
  }
  row.append(el("button", {type: "button", class: "remove", onclick: () => { box.remove(); changed(); }}, "Remove"));
  box.append(row);
  return box;
}

// A table inside an entry (a printer's smart plug): optional; "No smart plug" removes it.
function subBox(prefix, sub, values, spec) {
  const box = el("fieldset", {class: "subtable", dataset: {table: sub}});
  box.append(el("legend", {}, spec.title || sub));
  build(box, `${prefix}.${sub}`, values, {...spec, isPlug: sub === "plug"});
  return box;
}

function readBox(box) {
  const out = {};
  for (const sub of box.querySelectorAll(":scope > fieldset.subtable")) {
    const values = readBox(sub);
    out[sub.dataset.table] = values.kind === null || values.kind === undefined ? null : values;
  }
  for (const field of box._fields) {
    // A key the chosen kind does not take: removed (a stored secret of another kind leaves with the old kind).
    const off = box._belongs ? !box._belongs(field) : false;
    const value = off ? (field.control.dataset.secret ? undefined : null) : field.read();
    if (value !== undefined) out[field.key] = value;
  }
  return out;
}

function collect() {
  const settings = {};
  for (const [name, spec] of Object.entries(data.schema)) {
    if (spec.many) {
      settings[name] = [...document.querySelectorAll(`#list-${name} .item`)]
        .map((box) => box.dataset.ref ? {...readBox(box), _ref: box.dataset.ref} : readBox(box));
    } else {
      const box = document.querySelector(`[data-section="${name}"]`);
      if (box) settings[name] = readBox(box);
    }
  }
  return settings;
}

// Where to show a problem the server names by key. A list entry's key counts entries as they were sent
// ("notify[0]" is the first box now, whatever it was rendered as), so it is looked up by position.
function errorTarget(key) {
  const entry = /^(\w+)\[(\d+)\](.*)$/.exec(key);
  if (entry) {
    const box = document.querySelectorAll(`#list-${entry[1]} .item`)[Number(entry[2])];
    return box ? box.querySelector(`[data-error-for="${CSS.escape(box.dataset.prefix + entry[3])}"]`) : null;
  }
  return document.querySelector(`[data-error-for="${CSS.escape(key)}"]`);
}

// Which sections and "More settings" are open: kept across the re-reading after a save, so the person stays where
// they were. Printers and notifications start open (what a new box needs first), and a section named in the link.
const opened = new Set(["section-printer", "section-notify", location.hash.slice(1)]);

function keepOpen(details, id) {
  details.open = opened.has(id);
  details.addEventListener("toggle", () => { if (details.open) opened.add(id); else opened.delete(id); });
}

function render() {
  const sections = document.getElementById("sections");
  sections.replaceChildren();
  for (const [name, spec] of Object.entries(data.schema)) {
    const values = data.settings[name];
    // Each section folds to its title: on a phone the page is a list of sections, one opened at a time.
    const card = el("details", {class: "card settings-section", id: `section-${name}`},
      el("summary", {}, el("h2", {id: `title-${name}`}, spec.title)),
      spec.help ? el("p", {class: "help"}, spec.help) : null);
    keepOpen(card, card.id);
    if (spec.many) {
      const list = el("div", {id: `list-${name}`, class: "list"});
      list.append(...(values || []).map((item, i) => itemBox(name, item, i)));
      const add = el("button", {type: "button", class: "add"}, ADD_TEXT[name] || `Add ${name}`);
      add.onclick = () => {
        const box = itemBox(name, {}, `new${++added}`);
        list.append(box);
        changed();
        box.querySelector("input, select")?.focus();
      };
      card.append(list, add);
    } else {
      const box = el("div", {class: "section-fields", dataset: {section: name}});
      // The owner's password is changed through its own flows (first visit, bambupi set-password), never here.
      build(box, name, values, spec, (key) => key.endsWith("password_hash"));
      card.append(box);
      if (name === "bridge" || name === "facade") {
        // Whether the home broker took the box / what the printer facade serves, as /healthz says it (showHealth).
        card.append(el("p", {class: "live-note", id: `${name}-status`, role: "status"}));
      }
    }
    sections.append(card);
  }
  document.getElementById("form").hidden = false;
  dirty.textContent = "";
}

function showLinkedSection() {
  const section = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  if (!section || !section.matches("details.settings-section")) return;
  section.open = true;
  section.scrollIntoView();
}
addEventListener("hashchange", showLinkedSection);

function changed() {
  dirty.textContent = "Unsaved changes";
}

async function loadDiscovered() {
  const response = await fetch("/api/discovery");
  if (!response.ok) return;
  const found = (await response.json()).printers;
  const box = document.getElementById("discovered");
  box.replaceChildren(...found.map((printer) => el("button", {
    type: "button",
    onclick: () => {
      const id = (printer.name || printer.serial).toLowerCase().replace(/[^a-z0-9_-]+/g, "-").slice(0, 32);
      const entry = itemBox("printer", {id, name: printer.name, model: printer.model, host: printer.host,
        serial: printer.serial}, `new${++added}`);
      document.getElementById("list-printer").append(entry);
      changed();
      entry.querySelector('[data-key="access_code"]')?.focus();
      status.textContent = "Type the printer's access code (on its screen), then Save.";
    },
  }, `Add ${printer.name || printer.serial} (${printer.model}, ${printer.host})`)));
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return [response, await response.json()];
}

async function trustPrinter(id) {
  const [response, body] = await post(`/api/printers/${encodeURIComponent(id)}/trust`);
  status.textContent = response.ok ? `${id}: now trusting ${body.fingerprint}` : body.error;
  if (response.ok) await load();
}

async function testChannel(name) {
  const [response, body] = await post(`/api/notify/${encodeURIComponent(name)}/test`);
  if (!response.ok) { status.textContent = `${name}: ${body.detail || body.error}`; await loadDeliveries(); return; }
  // Queued: the box does not wait for the service (it may hang); the outcome comes in the delivery log.
  status.textContent = `${name}: test queued…`;
  for (let tries = 0; tries < 240; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const answer = await fetch("/api/notify");
    if (!answer.ok) break;
    const done = (await answer.json()).log.find((d) => d.channel === name && d.kind === "test" && d.at >= body.at);
    if (done) {
      status.textContent = done.status === "sent" ? `${name}: test sent` : `${name}: ${done.status}: ${done.detail}`;
      break;
    }
  }
  await loadDeliveries();
}

async function load() {
  const session = await (await fetch("/api/session")).json();
  if (!session.logged_in) { location.href = "/login"; return; }
  csrf = session.csrf;
  const response = await fetch("/api/settings");
  if (!response.ok) {
    status.textContent = (await response.json().catch(() => ({}))).error || `could not read the settings (${response.status})`;
    document.getElementById("form").hidden = false;
    return;
  }
  const first = data === null;
  data = await response.json();
  if (!data.editable) status.textContent = "This box runs without a config file: settings are read-only.";
  submit.disabled = !data.editable;
  render();
  // A link to a section (/settings#section-bridge) opens it; the form did not exist when the browser looked.
  if (first) showLinkedSection();
  await showHealth();
  await loadDiscovered();
  await loadDeliveries();
}

async function showHealth() {
  const response = await fetch("/healthz").catch(() => null);
  if (!response || !response.ok) return;
  const components = (await response.json()).components;
  showBridge(components);
  showFacade(components);
}
setInterval(showHealth, 2000);  // a save reconnects: the page follows it

function showBridge(components) {
  const note = document.getElementById("bridge-status");
  const broker = components.home_broker;
  if (note && broker) note.textContent = `Home broker: ${broker.state}${broker.detail ? ` (${broker.detail})` : ""}`;
}

function showFacade(components) {
  // The ports and apps while it serves (facade_endpoint); its failure's reason; else off.
  const note = document.getElementById("facade-status");
  if (!note) return;
  const part = components.facade || {};
  const serving = components.facade_endpoint;
  if (serving) {
    const cameras = Object.entries(serving.printers)
      .filter(([, printer]) => printer.camera_port).map(([id, printer]) => `${id}'s camera on ${printer.camera_port}`);
    note.textContent = `Printer facade: MQTT on port ${serving.mqtt_port}, ${serving.mqtt_clients} app(s)` +
      (cameras.length ? `; ${cameras.join(", ")}` : "") +
      (serving.allow_control ? "; apps may pause, resume, stop and switch the light" : "; apps can only watch");
  } else if (part.state === "failed" || part.state === "restarting") {
    note.textContent = `Printer facade: ${part.state}${part.error ? ` (${part.error.message})` : ""}`;
  } else {
    note.textContent = "Printer facade: off";
  }
}

async function loadDeliveries() {
  const response = await fetch("/api/notify");
  if (!response.ok) return;
  const rows = (await response.json()).log.slice(-30).reverse().map((d) => {
    const when = new Date(d.at * 1000).toLocaleString();
    const result = `${d.status}${d.attempts > 1 ? ` after ${d.attempts} tries` : ""}${d.detail ? `: ${d.detail}` : ""}`;
    return el("tr", {}, ...[when, d.channel, d.title, result].map((text) => el("td", {}, text)));
  });
  document.querySelector("#deliveries tbody").replaceChildren(...rows);
}

// The save's outcome in the save bar: what took effect at once, and what waits for a restart.
function saved(body) {
  const parts = [el("strong", {}, "Saved."), " "];
  parts.push(el("span", {class: "applied"}, body.applied.length
    ? `Applied now: ${body.applied.join("; ")}.` : "Nothing to apply now."));
  if (body.restart_required.length) {
    const names = body.restart_required.map((name) => (data.schema[name] || {}).title || name);
    parts.push(" ", el("span", {class: "restart"}, `Needs a restart: ${names.join(", ")}.`));
  }
  for (const warning of body.warnings || []) parts.push(" ", el("span", {class: "warning"}, warning));
  status.replaceChildren(...parts);
}

// Each problem next to its field; the first one scrolled into view (its "More settings" opened) and focused.
function showProblems(problems) {
  let first = null;
  for (const problem of problems) {
    const target = errorTarget(problem.key);
    if (!target) { status.append(` ${problem.key}: ${problem.message}`); continue; }
    target.textContent = problem.message;
    const row = target.closest(".field");
    if (row) row.classList.add("invalid");
    first = first || target;
  }
  if (!first) return;
  for (let details = first.closest("details"); details; details = details.parentElement.closest("details")) {
    details.open = true;
  }
  const row = first.closest(".field") || first;
  row.scrollIntoView({block: "center"});
  const control = row.querySelector("input, select");
  if (control) control.focus({preventScroll: true});
}

function clearProblems() {
  for (const error of document.querySelectorAll("[data-error-for]")) error.textContent = "";
  for (const row of document.querySelectorAll(".field.invalid")) row.classList.remove("invalid");
}

document.getElementById("form").addEventListener("input", changed);
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearProblems();
  status.classList.remove("problem");
  // A number field holding letters reads as empty: say so instead of saving the default.
  const local = [...document.querySelectorAll("[data-section], .item, .subtable")].flatMap((box) => box._fields || [])
    .filter((field) => field.bad && field.bad() && !field.row.hidden)
    .map((field) => ({key: field.control.id, message: field.bad()}));
  if (local.length) {
    status.textContent = "Nothing was saved: a field needs a number.";
    status.classList.add("problem");
    showProblems(local);
    return;
  }
  // The file's version as this page read it: a file changed since (by hand, another tab, set-password) is refused
  // with 409, not overwritten; what was typed here stays on the page.
  submit.disabled = true;  // one save at a time: a second tap while the box applies the first does nothing
  let response, body;
  try {
    [response, body] = await post("/api/settings", {settings: collect(), version: data.version});
  } catch {
    status.textContent = "No answer from the box: reload the page to see what it saved.";
    return;
  } finally {
    submit.disabled = !data.editable;
  }
  if (response.ok) {
    await load();  // the form as the file is now; then the outcome, so what the bar says is what the form shows
    saved(body);
    return;
  }
  status.textContent = body.error;
  status.classList.add("problem");
  showProblems(body.fields || []);
});

load();
