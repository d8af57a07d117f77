"use strict";
// The owner's changes on /filament (bambupi/web/templates/filament.html): add, edit, delete a spool and put it in a
// slot. Each is one request with the session's CSRF token; the page reloads to show the box's answer. Without a
// login the controls stay hidden (the API refuses them anyway).

let session = {logged_in: false, csrf: null};
const msg = document.getElementById("msg");

async function call(method, url, body) {
  const r = await fetch(url, {method, headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf || ""},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const answer = await r.json().catch(() => ({error: "no answer"}));
  if (!r.ok) { msg.textContent = answer.error || ("failed: " + r.status); return null; }
  return answer;
}

function grams(value) { return value === "" ? null : Number(value); }

function place(value) {
  const [location, printer, a, b] = value.split(":");
  if (location === "ams") return {location, printer, ams: Number(a), tray: Number(b)};
  if (location === "external") return {location, printer, holder: a === "None" || a === "" ? null : Number(a)};
  return {location: "shelf"};
}

function editForm(item) {
  const form = item.querySelector("form.edit");
  const f = JSON.parse(form.dataset.fields);
  form.replaceChildren();
  for (const [name, label, type] of [["material", "Material", "text"], ["colour", "Colour", "color"],
    ["brand", "Brand", "text"], ["net_g", "Net weight (g)", "number"], ["remaining_g", "Left (g)", "number"]]) {
    const l = document.createElement("label");
    l.textContent = label;
    const input = document.createElement("input");
    input.name = name; input.type = type;
    input.value = f[name] === null ? "" : f[name];
    input.dataset.was = input.value;  // a colour input cannot be empty: an unknown colour is sent only if changed
    if (type === "number") { input.min = "0"; input.step = "any"; }
    l.append(input);
    form.append(l);
  }
  const save = document.createElement("button");
  save.type = "submit"; save.textContent = "Save";
  form.append(save);
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    // Only what the owner changed: a spool of unknown colour stays unknown, not black.
    const body = {};
    for (const input of form.querySelectorAll("input")) {
      if (input.value === input.dataset.was) continue;
      body[input.name] = input.type === "number" ? grams(input.value)
        : input.type === "color" ? input.value.toUpperCase() : input.value;
    }
    if (await call("PATCH", `/api/spools/${item.dataset.spool}`, body)) location.reload();
  };
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const item = button.closest("[data-spool]");
  if (button.dataset.action === "edit") editForm(item);
  if (button.dataset.action === "delete" && confirm("Delete this spool?")) {
    if (await call("DELETE", `/api/spools/${item.dataset.spool}`)) location.reload();
  }
});

document.addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-action='assign']");
  if (!select) return;
  const item = select.closest("[data-spool]");
  if (await call("POST", `/api/spools/${item.dataset.spool}/assign`, place(select.value))) location.reload();
});

document.getElementById("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const d = new FormData(event.target);
  const body = {material: d.get("material"), colour: d.get("colour").toUpperCase(), brand: d.get("brand"),
    net_g: grams(d.get("net_g")), remaining_g: grams(d.get("remaining_g"))};
  if (await call("POST", "/api/spools", body)) location.reload();
});

(async () => {
  session = await (await fetch("/api/session")).json();
  for (const part of document.querySelectorAll(".owner")) part.hidden = !session.logged_in;
  document.getElementById("login-hint").hidden = session.logged_in;
  document.body.dataset.session = session.logged_in ? "owner" : "anonymous";  // the page is ready for its reader
})();

// Spools the AMS reads and jobs' grams show up by themselves, except while the owner is editing.
setInterval(() => {
  const busy = ["INPUT", "SELECT"].includes(document.activeElement?.tagName);
  if (!document.querySelector("form.edit:not([hidden])") && !busy) location.reload();
}, 15000);
