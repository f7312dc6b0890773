// Shared by the pages: API calls with the optional key, errors as sentences, images via fetch.
"use strict";

const KEY_STORE = "congruence.apiKey";

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

function setupKeyBox() {
  const box = document.getElementById("key-box");
  const input = document.getElementById("api-key");
  if (!box || !input) return;
  input.value = apiKey();
  input.addEventListener("change", () => localStorage.setItem(KEY_STORE, input.value.trim()));
  if (apiKey()) box.hidden = false;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map(d => {
      const where = (d.loc || []).filter(p => p !== "body").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return "the server refused the request";
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("Authorization", `Bearer ${apiKey()}`);
  let resp;
  try {
    resp = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, "The server cannot be reached. Is `congruence serve` still running?");
  }
  if (resp.status === 401) {
    const box = document.getElementById("key-box");
    if (box) box.hidden = false;
    throw new ApiError(401, "This server needs an API key: paste one in the key box at the top right " +
                            "(create one with `congruence keys create NAME`).");
  }
  if (!resp.ok) {
    let message = `The server answered ${resp.status}.`, body = null;
    try { body = await resp.json(); message = describeDetail(body.detail); } catch (e) { /* not JSON */ }
    const err = new ApiError(resp.status, message.endsWith(".") ? message : message + ".");
    err.body = body;  // a 409's current entry, say
    throw err;
  }
  return resp;
}

async function apiJson(path, options) { return (await api(path, options)).json(); }

// <img> cannot send an Authorization header: fetch the bytes, show them from a blob URL.
async function loadImage(img, url) {
  try {
    const blob = await (await api(url)).blob();
    img.src = URL.createObjectURL(blob);
  } catch (e) {
    img.alt = "image unavailable";
    img.title = e.message;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// Icons drawn as inline SVG, not emoji: a machine without an emoji font (headless Chromium on a
// bare Debian) draws a thumbs-up emoji as an empty box. Decorative: the control carries the words
// (its aria-label and title).
const ICONS = {
  like: "M2 10h4v11H2zM8 10l4.5-7c1-1.2 3-.4 2.5 1.5L14 9h6c1.2 0 2.1 1.1 1.8 2.3L20 19.2c-.3 1.1-1.2 1.8-2.3 1.8H8z",
  dislike: "M2 14h4V3H2zM8 14l4.5 7c1 1.2 3 .4 2.5-1.5L14 15h6c1.2 0 2.1-1.1 1.8-2.3L20 4.8C19.7 3.7 18.8 3 17.7 3H8z",
  remove: "M5.6 4.2 12 10.6l6.4-6.4 1.4 1.4-6.4 6.4 6.4 6.4-1.4 1.4-6.4-6.4-6.4 6.4-1.4-1.4 6.4-6.4-6.4-6.4z",
  warning: "M12 2 1 21h22zm-1 7h2v6h-2zm0 8h2v2h-2z",
};

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ class: `icon icon-${name}`, viewBox: "0 0 24 24", width: "16", height: "16",
                                        fill: "currentColor", "aria-hidden": "true", focusable: "false" })) {
    svg.setAttribute(k, v);
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
}

function setStatus(node, message, isError = false) {
  node.textContent = message;
  node.classList.toggle("error", isError);
}

function saveBlob(blob, filename) {
  const a = el("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(a);
  a.click();
  a.remove();
}

const fmt = new Intl.NumberFormat("en");
document.addEventListener("DOMContentLoaded", setupKeyBox);
