// The MQTT debug page: polls /api/printers/<id>/mqtt-log?since=<last seq> once a second and lists messages,
// newest first. Pause stops polling (nothing is lost while the box still holds the messages); Clear empties
// the view; Download saves what is shown as JSON. New rows are added above the old ones, which are never redrawn
// (a selection in them survives), and the row being read stays where it is on the screen.
"use strict";

const POLL_MS = 1000;
const MAX_SHOWN = 1000;
const printerId = decodeURIComponent(location.pathname.split("/")[2] || "");
let since = 0, paused = false, messages = [];

const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function pretty(payload) {
  try { return JSON.stringify(JSON.parse(payload), null, 2); } catch { return payload; }
}

function summary(payload) {
  try {
    const body = JSON.parse(payload);
    const [section] = Object.keys(body);
    const command = section && body[section] && body[section].command;
    return [section, command].filter(Boolean).join(" · ");
  } catch { return "not JSON"; }
}

function item(m) {
  const time = new Date(m.at * 1000).toLocaleTimeString([], { hour12: false });
  const icon = window.bambupiIcon(m.direction === "in" ? "download" : "upload");
  const dir = m.direction === "in" ? `<span class="dir in">${icon}in</span>` : `<span class="dir out">${icon}out</span>`;
  const cut = m.truncated ? " · truncated" : "";
  // Who sent a command (the box's own requests, like pushall, name no one).
  const by = m.origin ? ` <span class="by">by ${esc(m.origin)}</span>` : "";
  // A report's HMS codes come described by the box, as the card describes them (even once cleared).
  const hms = m.hms && m.hms.length ? `<ul class="hms-notes">${HMS.sorted(m.hms).map(HMS.line).join("")}</ul>` : "";
  return `<li data-seq="${m.seq}"><details><summary>#${m.seq} ${esc(time)} ${dir} ${esc(summary(m.payload))}${by}
    <span class="muted">· ${m.size} B${cut} · ${esc(m.topic)}</span></summary><pre>${esc(pretty(m.payload))}</pre></details>${hms}</li>`;
}

function showCount() {
  document.getElementById("count").textContent = `${messages.length} messages${paused ? " · paused" : ""}`;
}

// The row the person is looking at: an opened message on the screen, else (scrolled down) the top visible row.
function anchorRow(list) {
  const onScreen = (li) => {
    const box = li.getBoundingClientRect();
    return box.bottom > 0 && box.top < window.innerHeight;
  };
  const open = [...list.querySelectorAll("details[open]")].map((d) => d.parentElement).find(onScreen);
  if (open) return open;
  return window.scrollY > 0 ? [...list.children].find(onScreen) || null : null;
}

function add(fresh) {
  const list = document.getElementById("log");
  const anchor = anchorRow(list);
  const top = anchor ? anchor.getBoundingClientRect().top : 0;
  list.insertAdjacentHTML("afterbegin", fresh.slice().reverse().map(item).join(""));
  while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
  if (anchor && anchor.isConnected) window.scrollBy(0, anchor.getBoundingClientRect().top - top);
  showCount();
}

async function poll() {
  if (!paused) {
    try {
      const r = await fetch(`/api/printers/${encodeURIComponent(printerId)}/mqtt-log?since=${since}`, { cache: "no-store" });
      const body = await r.json();
      if (!r.ok) {
        document.getElementById("count").textContent = body.error || `error ${r.status}`;
      } else if (body.messages.length) {
        messages = messages.concat(body.messages).slice(-MAX_SHOWN);
        since = body.messages[body.messages.length - 1].seq;
        add(body.messages);
      }
    } catch {
      document.getElementById("count").textContent = "the box is not answering; retrying";
    }
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("printer").textContent = printerId;
document.getElementById("pause").addEventListener("click", (e) => {
  paused = !paused;
  const button = e.currentTarget;
  button.innerHTML = window.bambupiIcon(paused ? "play" : "pause") + `<span>${paused ? "Resume" : "Pause"}</span>`;
  button.setAttribute("aria-pressed", String(paused));
  showCount();
});
document.getElementById("clear").addEventListener("click", () => {
  messages = [];
  document.getElementById("log").replaceChildren();
  showCount();
});
document.getElementById("download").addEventListener("click", () => {
  const blob = new Blob([JSON.stringify({ printer: printerId, messages }, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `bambupi-mqtt-${printerId}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  a.click();
  URL.revokeObjectURL(a.href);
});
poll();
