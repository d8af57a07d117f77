"use strict";
// The owner's delete on a print's detail page (bambupi/history/job.html): the button asks first, in the page (no
// browser dialog), then sends DELETE /api/jobs/<id> with the session's CSRF token and goes back to the list.

const del = document.getElementById("delete");
const confirmBox = document.getElementById("confirm");
const msg = document.getElementById("delete-msg");

async function deleteJob(id) {
  confirmBox.hidden = true;
  const session = await (await fetch("/api/session")).json();
  if (!session.logged_in) { msg.textContent = "log in first (/login)"; return; }
  const r = await fetch(`/api/jobs/${encodeURIComponent(id)}`, {method: "DELETE",
    headers: {"X-CSRF-Token": session.csrf}});
  if (!r.ok) { msg.textContent = (await r.json()).error; return; }
  msg.textContent = "deleted";
  location.href = "/history";
}

if (del) {
  del.addEventListener("click", () => { confirmBox.hidden = false; msg.textContent = ""; });
  document.getElementById("delete-yes").addEventListener("click", () => deleteJob(del.dataset.job));
  document.getElementById("delete-no").addEventListener("click", () => { confirmBox.hidden = true; });
  // The button is the owner's: a visitor is told to log in instead of being asked to confirm what is then refused.
  fetch("/api/session").then((r) => r.json()).then((session) => {
    for (const part of document.querySelectorAll(".owner")) part.hidden = !session.logged_in;
    document.getElementById("login-hint").hidden = session.logged_in;
    document.body.dataset.session = session.logged_in ? "owner" : "anonymous";  // the page is ready for its reader
  });
}
