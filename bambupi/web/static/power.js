"use strict";
// The owner's plug switch and auto-off cancel on /power (bambupi/power/power.html). A button says what it does in
// data attributes: data-action is the route after /api/printers/<id>/, data-on and data-confirm the plug's request.

async function act(id, action, body) {
  const msg = document.getElementById("msg-" + id);
  const confirmBox = document.getElementById("confirm-" + id);
  confirmBox.hidden = true;
  const session = await (await fetch("/api/session")).json();
  if (!session.logged_in) { msg.textContent = "log in first (/login)"; return; }
  const r = await fetch(`/api/printers/${encodeURIComponent(id)}/${action}`, {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf}, body: JSON.stringify(body)});
  const answer = await r.json();
  if (r.status === 409 && answer.confirm) {
    // The box refused an Off that would interrupt the printer: ask, naming what would happen.
    confirmBox.querySelector(".question").textContent = answer.confirm + " Switch the plug off?";
    confirmBox.hidden = false;
    msg.textContent = "";
    return;
  }
  if (!r.ok) { msg.textContent = answer.error; return; }
  if (answer.cancelled === false) { msg.textContent = "nothing to cancel: " + answer.auto_off.reason; return; }
  msg.textContent = "done";
  setTimeout(() => location.reload(), 800);
}

function keepOn(id) {
  document.getElementById("confirm-" + id).hidden = true;
  document.getElementById("msg-" + id).textContent = "kept on";
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-printer]");
  if (!button) return;
  const {printer, action, on, confirm} = button.dataset;
  if (action === "keep-on") { keepOn(printer); return; }
  const body = {};
  if (on !== undefined) body.on = on === "true";
  if (confirm !== undefined) body.confirm = true;
  act(printer, action, body);
});

// Fresh figures every 30 s, except while a question is open: it must not vanish under the owner's finger.
setInterval(() => { if (!document.querySelector(".confirm:not([hidden])")) location.reload(); }, 30000);
