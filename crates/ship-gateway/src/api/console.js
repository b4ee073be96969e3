// The web console of ship-gateway (served as /console.js; the page has no inline script, and
// its Content-Security-Policy allows none). Everything a device supplies (names, brands,
// models, SHIP IDs, reasons) reaches the page only as text nodes, never as markup, and is shown
// "neutralised": control, bidi and invisible characters as visible escapes, inside <bdi>.
"use strict";
const api = "/api/v1";

function grouped(ski) { return (ski || "").match(/.{1,4}/g)?.join(" ") ?? ""; }

// Peer-supplied text as it may be shown: a backslash doubled, and every control character (a
// newline could forge a second line), format character (bidi controls could reorder what
// follows; zero-width ones hide) and line or paragraph separator written as an escape (`\n`,
// `\u{202e}`), as the gateway's terminal and the library's `Display` do.
function neutral(text) {
  return String(text ?? "").replace(
    /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu,
    c => {
      if (c === "\\") return "\\\\";
      if (c === "\n") return "\\n";
      if (c === "\r") return "\\r";
      if (c === "\t") return "\\t";
      return "\\u{" + c.codePointAt(0).toString(16) + "}";
    });
}

// A piece of peer-supplied text: a text node inside <bdi> (isolated from the text around it).
function peerText(text, cls) {
  const node = document.createElement("bdi");
  node.setAttribute("dir", "auto");
  if (cls) node.className = cls;
  node.textContent = neutral(text);
  return node;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
}
function countdown(expires) {
  return Math.max(0, Math.round((expires - Date.now()) / 1000)) + " s left";
}
// A span whose text is refreshed every second by tick(): `since` (how long since `at`) or
// `left` (time left until `at`).
function ticking(kind, at) {
  const span = el("span", { class: "tick", "data-kind": kind, "data-at": String(at) });
  span.textContent = tickText(kind, at);
  return span;
}
function tickText(kind, at) {
  if (kind === "left") return countdown(at);
  return duration(Date.now() - at);
}
function tick() {
  for (const span of document.querySelectorAll(".tick")) {
    span.textContent = tickText(span.dataset.kind, Number(span.dataset.at));
  }
}

// ----- messages ------------------------------------------------------------------------------
function showError(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.classList.toggle("shown", !!text);
}
function showNotice(text) {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.classList.toggle("shown", !!text);
}

async function call(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try { response = await fetch(api + path, options); } catch (e) { showError(String(e)); return null; }
  if (response.status === 401) { location.href = "/login"; return null; }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message; } catch (_) {}
    showError(message);
    return null;
  }
  showError("");
  return response.status === 204 ? {} : response.json();
}

// ----- the confirmation dialog ---------------------------------------------------------------
// An in-page dialog: the question is ours, the device's name (untrusted) in its own <bdi>,
// and the SKI, from the API, in its own element: no name can forge or hide the SKI line.
function ask(question, name, ski, note, ok) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = question;
  document.getElementById("confirm-name").textContent = neutral(name);
  document.getElementById("confirm-ski").textContent = grouped(ski);
  document.getElementById("confirm-note").textContent = note || "";
  document.getElementById("confirm-ok").textContent = ok || "OK";
  dialog.returnValue = "";
  return new Promise(resolve => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ----- names -----------------------------------------------------------------------------------
// The name a device is shown by: the one stored with its pairing, else the one it announces
// over mDNS, else its SHIP ID, else "Unknown device". Once a better one is known it stays (no
// drift back while the lists refresh).
const names = new Map();
let announced = new Map();
function nameOf(ski, stored, shipId) {
  const candidates = [[3, stored], [2, announced.get(ski)], [1, shipId]];
  let best = names.get(ski) || { rank: 0, name: null };
  for (const [rank, name] of candidates) {
    if (name && rank >= best.rank) { best = { rank, name }; break; }
  }
  names.set(ski, best);
  return best.name || "Unknown device";
}

// ----- pairing requests --------------------------------------------------------------------------
let requests = null;
function renderRequests() {
  const box = document.getElementById("requests");
  box.replaceChildren();
  if (!requests || !requests.length) { box.append(el("p", { class: "empty" }, "No device asks to pair.")); return; }
  for (const r of requests) {
    if (r.name) announced.set(r.ski, r.name);
    box.append(el("div", { class: "card request", "data-ski": r.ski },
      el("div", { class: "main" },
        el("div", { class: "name" }, peerText(nameOf(r.ski, null, null))),
        el("div", { class: "ski" }, grouped(r.ski)),
        el("div", { class: "muted" }, "from " + r.address + " · ",
          ticking("left", r.expires_ms), " to decide")),
      el("div", { class: "actions" },
        el("button", { class: "primary approve", onclick: () => decide(r.ski, "approve") }, "Approve"),
        el("button", { class: "deny", onclick: () => decide(r.ski, "deny") }, "Deny"))));
  }
}
async function decide(ski, what) {
  await call("POST", "/requests/" + ski + "/" + what);
  refresh();
}

// ----- paired devices ----------------------------------------------------------------------------
const CONNECTED = new Set(["Initiated", "ReceivedPairingRequest", "Trusted", "Pin", "InProgress", "Completed"]);
let peersJson = null;
function renderPeers(peers) {
  const box = document.getElementById("peers");
  // A PIN being typed survives a refresh of the list.
  const typed = new Map();
  for (const input of box.querySelectorAll(".pin-input")) {
    typed.set(input.dataset.ski, { value: input.value, focused: document.activeElement === input });
  }
  box.replaceChildren();
  if (!peers.length) { box.append(el("p", { class: "empty" }, "No paired devices yet.")); return; }
  for (const p of peers) {
    const details = el("div", { class: "muted" },
      el("span", { class: "badge state " + p.state }, p.state || "not running"));
    if (p.since_ms) details.append(" for ", ticking("since", p.since_ms));
    if ((p.detailed || "").startsWith("HelloReady")) details.append(" · waiting for the other device to confirm");
    if (p.tls_suite) details.append(" · " + p.tls_suite);
    if (p.last_address) details.append(" · " + p.last_address);
    const seen = el("div", { class: "muted last-seen" },
      p.last_seen_ms ? "Last seen " : "Not seen yet",
      p.last_seen_ms ? ticking("since", p.last_seen_ms) : null,
      p.last_seen_ms ? " ago" : null);
    let pinBox = null;
    if (p.pin_request) {
      const input = el("input", { class: "pin-input", "data-ski": p.ski, placeholder: "PIN (8 to 16 hex digits)",
        autocomplete: "off", spellcheck: "false", inputmode: "text" });
      const kept = typed.get(p.ski);
      if (kept) input.value = kept.value;
      const send = () => answerPin(p, input.value);
      input.addEventListener("keydown", e => { if (e.key === "Enter") send(); });
      pinBox = el("div", { class: "pin-box" },
        el("span", {}, p.pin_request.rejected ? "The PIN sent was wrong: this device waits for its PIN again · "
          : "This device waits for its PIN · ", ticking("left", p.pin_request.expires_ms)),
        input,
        el("button", { class: "primary pin-send", onclick: send }, "Send PIN"));
    }
    const actions = el("div", { class: "actions" });
    if (CONNECTED.has(p.state)) {
      actions.append(el("button", { class: "disconnect", onclick: () => disconnect(p) }, "Disconnect"));
    }
    actions.append(el("button", { class: "danger unpair", onclick: () => unpair(p) }, "Unpair"));
    box.append(el("div", { class: "card peer", "data-ski": p.ski },
      el("div", { class: "main" },
        el("div", { class: "name" }, peerText(nameOf(p.ski, p.name, p.ship_id))),
        el("div", { class: "ski" }, grouped(p.ski)),
        details,
        seen,
        p.last_error ? el("div", { class: "muted last-error" }, "Last error: ", peerText(p.last_error)) : null,
        pinBox),
      actions));
  }
  for (const [ski, kept] of typed) {
    if (!kept.focused) continue;
    const input = box.querySelector(".pin-input[data-ski='" + ski + "']");
    if (input) input.focus();
  }
}
async function answerPin(p, pin) {
  const answer = await call("POST", "/peers/" + p.ski + "/pin", { pin });
  if (answer) showNotice("PIN sent to " + grouped(p.ski) + ".");
  refresh();
}
async function unpair(p) {
  if (!await ask("Unpair this device? It will no longer be trusted or dialled.",
    nameOf(p.ski, p.name, p.ship_id), p.ski, "", "Unpair")) return;
  await call("DELETE", "/peers/" + p.ski);
  refresh();
}
async function disconnect(p) {
  if (!await ask("Disconnect this device? It stays paired and is dialled again.",
    nameOf(p.ski, p.name, p.ship_id), p.ski, "", "Disconnect")) return;
  await call("POST", "/peers/" + p.ski + "/disconnect");
  refresh();
}

// ----- pair by SKI or QR text ----------------------------------------------------------------------
async function pairWith(body) {
  const answer = await call("POST", "/peers", body);
  if (answer) showNotice(answer.next || "Paired.");
  refresh();
  return !!answer;
}
function setUpForms() {
  document.getElementById("pair-ski-form").addEventListener("submit", async e => {
    e.preventDefault();
    const ski = document.getElementById("pair-ski").value.replace(/\s+/g, "");
    const address = document.getElementById("pair-address").value.trim();
    const body = { ski };
    if (address) body.address = address;
    if (await pairWith(body)) {
      document.getElementById("pair-ski").value = "";
      document.getElementById("pair-address").value = "";
    }
  });
  document.getElementById("pair-qr-form").addEventListener("submit", async e => {
    e.preventDefault();
    const qr = document.getElementById("pair-qr").value.trim();
    if (await pairWith({ qr })) document.getElementById("pair-qr").value = "";
  });
  // A scanner types the code and Enter: submit it.
  document.getElementById("pair-qr").addEventListener("keydown", e => {
    if (e.key === "Enter") { e.preventDefault(); document.getElementById("pair-qr-form").requestSubmit(); }
  });
}

// ----- visible devices -----------------------------------------------------------------------------
let mdnsOn = true;
function renderVisible(services, paired) {
  const box = document.getElementById("visible");
  box.replaceChildren();
  if (!mdnsOn) {
    box.append(el("p", { class: "empty mdns-off" },
      "mDNS is off on this gateway (--no-mdns): no device can be seen from here. Pair devices by SKI and address, or by their QR text, above."));
    return;
  }
  if (!services.length) { box.append(el("p", { class: "empty" }, "No SHIP devices visible on this network.")); return; }
  for (const s of services) {
    const known = paired.has(s.ski);
    box.append(el("div", { class: "card visible", "data-ski": s.ski },
      el("div", { class: "main" },
        el("div", { class: "name" }, peerText(s.name)),
        el("div", { class: "muted" }, peerText([s.brand, s.model, s.type].filter(Boolean).join(" · "))),
        el("div", { class: "ski" }, grouped(s.ski))),
      el("div", { class: "actions" }, known ? el("span", { class: "muted" }, "paired")
        : el("button", { class: "pair", onclick: () => pair(s) }, "Pair"))));
  }
}
async function pair(s) {
  if (!await ask("Pair with this device?", s.name, s.ski,
    "Compare the SKI with the one the device shows.", "Pair")) return;
  await pairWith({ ski: s.ski });
}

// ----- refresh ---------------------------------------------------------------------------------
let refreshing = null;
async function refresh() {
  const [status, peers, visible, pending] = await Promise.all([
    call("GET", "/status"), call("GET", "/peers"), call("GET", "/visible"), call("GET", "/requests")]);
  if (status) {
    mdnsOn = status.mdns !== false;
    document.getElementById("own-ski").textContent = grouped(status.ski);
    document.getElementById("own-id").textContent = neutral(status.ship_id);
    document.getElementById("qr-text").textContent = status.qr || "";
    document.getElementById("qr-box").hidden = !status.qr;
    const c = status.counters;
    document.getElementById("counters").textContent =
      c.connected + " connected · " + c.paired + " paired" +
      (c.pin_requests ? " · " + c.pin_requests + " waiting for a PIN" : "");
  }
  if (visible) announced = new Map(visible.filter(s => s.name).map(s => [s.ski, s.name]));
  if (pending && JSON.stringify(pending) !== JSON.stringify(requests)) {
    requests = pending;
    renderRequests();
  }
  if (peers) {
    const json = JSON.stringify(peers);
    if (json !== peersJson) { peersJson = json; renderPeers(peers); }
  }
  if (visible && peers) renderVisible(visible, new Set(peers.map(p => p.ski)));
}
// After an event: at once (100 ms, to batch a burst), and once more when things have settled
// (1.5 s after the last event: what the gateway stores after a connection, its SHIP ID and last
// seen, comes without an event of its own).
let settling = null;
function refreshSoon() {
  clearTimeout(settling);
  settling = setTimeout(() => { settling = null; refresh(); }, 1500);
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; refresh(); }, 100);
}

function start() {
  setUpForms();
  const events = new EventSource(api + "/events");
  events.onmessage = () => refreshSoon();
  events.addEventListener("gap", () => refreshSoon());
  events.onopen = () => refreshSoon();
  setInterval(tick, 1000);
  setInterval(() => { refresh(); }, 10000);
  refresh();
}
start();
