"use strict";
// The page frame's part of every page (bambupi/web/templates/frame.html): who is signed in, Log in / Log out, the
// colour theme switch. Pages that need the session listen for "bambupi:session" (detail: /api/session's answer)
// instead of asking again; window.bambupiSession holds the latest answer (null until the box answered).

(() => {
  const root = document.documentElement;
  window.bambupiSession = null;
  // An icon from the frame's sprite, for pages that build HTML in script (same markup as frame.icon in Python).
  window.bambupiIcon = (name) => `<svg class="icon" aria-hidden="true" focusable="false"><use href="#i-${name}"/></svg>`;

  function show(session) {
    window.bambupiSession = session;
    const who = document.getElementById("whoami");
    const login = document.getElementById("login-link");
    const logout = document.getElementById("logout");
    if (who) {
      // The name of who is signed in, when the box tells it (each person's own account), else the role.
      const name = session.logged_in ? String(session.user || session.name || session.role || "owner") : "";
      who.querySelector(".name").textContent = name;
      who.hidden = !session.logged_in;
    }
    if (login) login.hidden = Boolean(session.logged_in);
    if (logout) logout.hidden = !session.logged_in;
    document.body.dataset.signedIn = session.logged_in ? "yes" : "no";
    window.dispatchEvent(new CustomEvent("bambupi:session", { detail: session }));
  }

  async function load() {
    try {
      const r = await fetch("/api/session", { cache: "no-store" });
      if (r.ok) show(await r.json());
    } catch { /* the box is restarting: the menu keeps "Log in" */ }
  }

  async function logOut() {
    if (!window.bambupiSession) await load();  // the token comes with the session
    const csrf = (window.bambupiSession && window.bambupiSession.csrf) || "";
    try {
      await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
    } catch { /* the box did not answer: asked again below */ }
    await load();
  }

  // Three states, one button: as the system -> dark -> light -> as the system. Its name says the current one.
  const THEMES = ["", "dark", "light"];
  const WORDS = { "": "as the system", dark: "dark", light: "light" };
  function themeLabel() {
    const button = document.getElementById("theme");
    if (button) {
      const now = root.dataset.theme || "";
      button.setAttribute("aria-label", `Colours: ${WORDS[now]} (change)`);
      button.title = `Colours: ${WORDS[now]}`;
    }
  }
  function nextTheme() {
    const now = root.dataset.theme || "";
    const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
    if (next) root.dataset.theme = next; else delete root.dataset.theme;
    try {
      if (next) localStorage.setItem("bambupi-theme", next); else localStorage.removeItem("bambupi-theme");
    } catch { /* storage off: the choice lasts for this page */ }
    themeLabel();
  }

  function start() {
    const logout = document.getElementById("logout");
    if (logout && !logout.closest("main")) logout.addEventListener("click", logOut);
    const theme = document.getElementById("theme");
    if (theme) theme.addEventListener("click", nextTheme);
    themeLabel();
    load();
  }
  window.bambupiLoadSession = load;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
