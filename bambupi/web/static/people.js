"use strict";
// What the people pages (/users, /sessions) share: the message line, dates, and making elements.
function say(text, error = false) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = error ? "error" : "";
}
function when(epoch) { return new Date(epoch * 1000).toLocaleString([], {dateStyle: "medium", timeStyle: "short"}); }
function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}
