// The Turf console: one page per hash (#overview, #components, ...), each drawn from the
// management API under /api/v1 (the same routes and checks the CLI uses). The visible page
// refreshes every two seconds; the messages page streams over server-sent events. Everything a
// device or component sent is shown as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);

// The session key: /login hands it over once in the URL fragment (which never leaves the
// browser); it is kept in this origin's storage, port included, and sent with every API call.
// The session cookie alone opens nothing: browsers send it to every port of this host.
const KEY = (() => {
  const handed = location.hash.match(/^#key=([0-9a-f]+)$/);
  if (handed) {
    localStorage.setItem("turf-key", handed[1]);
    history.replaceState(null, "", `${location.pathname}#overview`);
  }
  return localStorage.getItem("turf-key") || "";
})();

/** Calls the management API; throws the host's error text on a refusal. */
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), "x-turf-key": KEY };
  const reply = await fetch(`/api/v1${path}`, { ...options, headers });
  const json = (reply.headers.get("content-type") || "").includes("json");
  const body = json ? await reply.json() : await reply.text();
  if (!reply.ok) throw new Error(json ? body.error : `${reply.status} ${body}`);
  return body;
}
const post = (path, value) =>
  api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(value) });

/** A table row of text cells. */
function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement(tag);
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}
/** Fills `table` with a header and rows. */
function fill(table, header, rows) {
  table.replaceChildren(...(header ? [row(header, "th")] : []), ...rows);
}
const facts = (table, pairs) => fill(table, null, pairs.map(([k, v]) => row([k, v])));
function button(label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onclick);
  return b;
}
function link(text, href) {
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  return a;
}
const when = (secs) => (secs ? new Date(secs * 1000).toLocaleString() : "");
function duration(secs) {
  if (secs === undefined || secs === null || secs < 0) return "";
  const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60), s = Math.floor(secs % 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}
const since = (secs) => (secs ? duration(Date.now() / 1000 - secs) : "");
function size(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
const sum = (object) => Object.values(object || {}).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
const showError = (text) => { $("error").textContent = text || ""; };

// ---- overview --------------------------------------------------------------------------

/** One line on shadow sync with the upstream. */
function shadowSync(sync) {
  if (!sync || !sync.enabled) return "off";
  const link = sync.connected ? "connected" : "waiting for the upstream";
  return `${link}; ${sync.queued} queued, ${sync.pending} pending, ${sync.failed} failed; ${sync.counts.synced} synced`;
}

let previous = null;
async function overview() {
  const s = await api("/status");
  const b = s.broker, t = b ? b.traffic : null, p = s.process;
  facts($("overview-host"), [
    ["Thing", s.thing_name], ["Version", s.version], ["Started", `${when(s.started_at)} (${since(s.started_at)} ago)`],
    ["Memory (RSS)", p ? size(p.resident_bytes) : ""], ["CPU time", p ? `${(p.cpu_ms / 1000).toFixed(1)} s` : ""],
    ["Open files", p ? `${p.open_fds} of ${p.max_fds}` : ""], ["Root", s.root],
  ]);
  facts($("overview-listeners"), [
    ["Devices (MQTT, mutual TLS)", s.mqtt], ["Local tools (MQTT, plain)", s.plain || "off"],
    ["Discovery (HTTPS, mutual TLS)", s.discovery], ["Metrics and console", s.http ? `${s.http_tls ? "https" : "http"}://${s.http}` : ""],
    ["Server certificate expires", s.server_cert ? when(s.server_cert.not_after) : ""],
  ]);
  const u = s.upstream;
  facts($("overview-upstream"), u && u.endpoint ? [
    ["Broker", u.endpoint], ["State", `${u.state}${u.since ? ` for ${since(u.since)}` : ""}`],
    ["Spool", `${u.spooled} messages, ${size(u.spooled_bytes)}`], ["Delivered", u.delivered], ["Dropped (spool full)", u.dropped],
    ["Last error", u.last_error || ""],
  ] : [["State", "not configured"]]);
  const now = Date.now() / 1000;
  const received = t ? t.received_qos0 + t.received_qos1 + t.received_qos2 : 0;
  const sent = t ? t.sent_qos0 + t.sent_qos1 + t.sent_qos2 : 0;
  const rate = (total, key) => (previous && now > previous.at ? ((total - previous[key]) / (now - previous.at)).toFixed(1) : "…");
  facts($("overview-live"), b ? [
    ["Connections / sessions", `${b.connections} / ${b.sessions}`], ["Subscriptions", t.subscriptions],
    ["Messages in (per second)", `${rate(received, "received")} (${received} in all)`],
    ["Messages out (per second)", `${rate(sent, "sent")} (${sent} in all)`],
    ["Bytes in / out", `${size(t.received_bytes)} / ${size(t.sent_bytes)}`], ["In flight", t.inflight],
    ["Queued for devices", `${size(b.queued_bytes)} of ${size(b.queued_bytes_limit)}`],
    ["Dropped / refused", `${sum(b.dropped)} / ${sum(b.refused)}`], ["Retained", `${b.retained_messages} (${size(b.retained_bytes)})`],
    ["Deployments", Object.entries(s.deployments).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
    ["Shadow sync", shadowSync(s.shadow_sync)],
  ] : []);
  previous = { at: now, received, sent };
  fill($("overview-components"), ["Name", "Version", "State", "Uptime", "Restarts"], s.components.map((c) => {
    const tr = row([link(c.name, `#components/${encodeURIComponent(c.name)}`), c.version, c.state, since(c.running_since), c.restarts]);
    tr.children[2].className = `state-${c.state}`;
    return tr;
  }));
  return s;
}

// ---- components ------------------------------------------------------------------------

let component = null;
async function control(name, action) {
  try { await post(`/components/${encodeURIComponent(name)}/${action}`, {}); showError(""); } catch (e) { showError(`${action} ${name}: ${e.message}`); }
  await components();
}
async function components() {
  const list = await api("/components");
  fill($("components"), ["Name", "Version", "State", "Restarts", "Uptime", "Memory", "Last error", ""], list.map((c) => {
    const memory = c.usage ? `${size(c.usage.memory_bytes)} of ${size(c.usage.memory_limit_bytes)}` : "";
    const tr = row([link(c.name, `#components/${encodeURIComponent(c.name)}`), c.version, c.state, c.restarts, since(c.running_since), memory, c.error || "", ""]);
    tr.dataset.component = c.name;
    tr.children[2].className = `state-${c.state}`;
    if (c.name === component) tr.className = "selected";
    if (!c.builtin) tr.children[7].append(button("Restart", () => control(c.name, "restart")), " ", button("Stop", () => control(c.name, "stop")));
    return tr;
  }));
  if (component) await componentDetails(component);
}
async function componentDetails(name) {
  $("component-panel").hidden = false;
  $("component-title").textContent = name;
  const d = await api(`/components/${encodeURIComponent(name)}`);
  const i = d.info;
  facts($("component-facts"), [
    ["State", i.state], ["Version", i.version], ["Running for", since(i.running_since)], ["Restarts", i.restarts],
    ["Last error", i.error || ""], ["Built in", i.builtin ? "yes" : "no"], ["Origin", d.origin || ""],
  ]);
  $("component-config").textContent = JSON.stringify(d.configuration, null, 2);
  if (d.log_file) {
    const tail = await api(`/components/${encodeURIComponent(name)}/logs?lines=200`);
    $("component-log-file").textContent = tail.file;
    const log = $("component-log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = tail.lines.join("\n") || "(no lines yet)";
    if (atEnd) log.scrollTop = log.scrollHeight;
  } else {
    $("component-log-file").textContent = "";
    $("component-log").textContent = "(built into Turf: its lines are in the host's log, `turf logs turf`)";
  }
}
/** The configuration update in the form, or an error naming what is wrong. */
function configUpdate() {
  let merge;
  try { merge = JSON.parse($("config-merge").value || "{}"); } catch (e) { throw new Error(`MERGE is not JSON: ${e.message}`); }
  const reset = $("config-reset").value.split(",").map((p) => p.trim()).filter((p) => p !== "");
  return { MERGE: merge, RESET: reset };
}
$("config-preview").addEventListener("click", async () => {
  try {
    const preview = await post(`/components/${encodeURIComponent(component)}/preview`, configUpdate());
    $("config-result").textContent = `changed: ${preview.changed.join(", ") || "nothing"}\n${JSON.stringify(preview.result, null, 2)}`;
    $("config-status").textContent = "";
  } catch (e) { $("config-result").textContent = `refused: ${e.message}`; }
});
$("config-deploy").addEventListener("click", async () => {
  try {
    const record = await post("/deployments", { update_config: { [component]: configUpdate() } });
    $("config-status").textContent = `deployment ${record.id.slice(0, 8)} ${record.state}`;
    location.hash = `#deployments/${record.id}`;
  } catch (e) { $("config-status").textContent = `refused: ${e.message}`; }
});

// ---- deployments -----------------------------------------------------------------------

let deployment = null;
async function deployments() {
  const history = await api("/deployments");
  fill($("deployments"), ["Deployment", "State", "Created", "Took", "Components", "Error"], history.map((d) => {
    const took = d.took_ms === null || d.took_ms === undefined ? "" : `${d.took_ms} ms`;
    const outcome = d.components.map((c) => `${c.name} ${c.version}: ${c.action}`).join("; ");
    const tr = row([link(d.id.slice(0, 8), `#deployments/${d.id}`), d.state, when(d.created_at), took, outcome, d.error || ""]);
    tr.dataset.deployment = d.id;
    tr.children[1].className = `state-${d.state}`;
    if (d.id === deployment) tr.className = "selected";
    return tr;
  }));
  const shown = history.find((d) => d.id === deployment);
  $("deployment-panel").hidden = !shown;
  if (!shown) return;
  $("deployment-title").textContent = `Deployment ${shown.id}`;
  facts($("deployment-facts"), [
    ["State", shown.state], ["Created", when(shown.created_at)], ["Started", when(shown.started_at)], ["Finished", when(shown.finished_at)],
    ["Outcome", shown.detail || (shown.state === "SUCCEEDED" ? "all components running" : "")],
    ["Why", shown.error || ""], ["Failure handling", shown.request.failure_handling_policy],
  ]);
  $("deployment-facts").querySelector("tr:nth-child(1) td:nth-child(2)").className = `state-${shown.state}`;
  fill($("deployment-progress"), ["At", "Component", "What"], shown.progress.map((e) => row([`${e.at_ms} ms`, e.component || "(deployment)", e.what])));
  $("deployment-request").textContent = JSON.stringify(shown.request, null, 2);
}

// ---- client devices --------------------------------------------------------------------

let device = null;
async function devices() {
  const [things, clients] = await Promise.all([post("/devices", { op: "list" }), api("/clients")]);
  const sessions = new Map(clients.sessions.map((s) => [s.client_id, s]));
  fill($("devices"), ["Thing", "Associated", "Certificates", "Connected", "From", "Since", "Registered"], things.devices.map((d) => {
    const s = sessions.get(d.thing);
    const connected = s ? (s.connected ? "yes" : "session kept, offline") : "no";
    const tr = row([link(d.thing, `#devices/${encodeURIComponent(d.thing)}`), d.associated ? "yes" : "no",
      d.certificates.map((c) => c.slice(0, 12)).join(", "), connected, s ? s.remote : "", s ? `${since(s.since)} ago` : "", when(d.created_at)]);
    tr.dataset.thing = d.thing;
    tr.children[3].className = s && s.connected ? "ok" : "";
    if (d.thing === device) tr.className = "selected";
    return tr;
  }));
  fill($("sessions"), ["Client id", "Connected", "From", "Listener", "Since"], clients.sessions.map((s) => {
    const tr = row([s.client_id, s.connected ? "yes" : "no (session kept)", s.remote || "", s.listener, `${when(s.since)} (${since(s.since)} ago)`]);
    tr.dataset.client = s.client_id;
    return tr;
  }));
  if (clients.total > clients.sessions.length) $("sessions").appendChild(row([`… and ${clients.total - clients.sessions.length} more`]));
  fill($("denials"), ["When", "Client", "Refused", "Topic or filter", "Why", "More since"], clients.denials.map((d) =>
    row([when(d.at), d.client_id, d.action, d.subject, d.reason, d.unlisted_before || ""])));
  if (device) await deviceAccess(device);
}
async function deviceAccess(thing) {
  $("device-panel").hidden = false;
  $("device-title").textContent = thing;
  const access = await api(`/devices/${encodeURIComponent(thing)}/access`);
  $("device-groups-note").textContent = !access.configured
    ? "The client device auth component has no deviceGroups: every device is denied."
    : access.groups.length === 0 ? "No device group selects this thing: it is denied everything." : "Groups that select it, and what their policies allow it:";
  const rows = [];
  for (const g of access.groups) {
    for (const st of g.statements) rows.push(row([g.group, g.selection_rule, `${g.policy}.${st.name}`, st.operations.join(", "), st.resources.join(", ")]));
  }
  fill($("device-access"), ["Group", "Selection rule", "Statement", "Operations", "Resources"], rows);
}

// ---- shadows ---------------------------------------------------------------------------

/** Sends a shadow request; shows the document or the refusal. */
async function shadow(operation, payload) {
  const request = { thing: $("shadow-thing").value, name: $("shadow-name").value, op: operation };
  if (payload !== undefined) request.payload = payload;
  try {
    const reply = await post("/shadows", request);
    const doc = reply.document;
    $("shadow-document").textContent = JSON.stringify(doc, null, 2);
    const state = doc.state || {};
    const show = (v) => (v === undefined ? "" : JSON.stringify(v));
    facts($("shadow-summary"), [["Version", doc.version], ["Desired", show(state.desired)], ["Reported", show(state.reported)], ["Delta", show(state.delta)]]);
  } catch (e) {
    $("shadow-document").textContent = `refused: ${e.message}`;
    $("shadow-summary").replaceChildren();
  }
}
async function namedShadows() {
  try {
    const page = await post("/shadows", { thing: $("shadow-thing").value, op: "list-named", page_size: 100 });
    const named = $("shadow-named");
    named.replaceChildren("Named shadows: ");
    for (const name of page.results) {
      named.append(button(name, () => { $("shadow-name").value = name; shadow("get"); }), " ");
    }
    named.append(button("(classic)", () => { $("shadow-name").value = ""; shadow("get"); }));
  } catch (e) { $("shadow-named").textContent = ""; }
}
$("shadow-form").addEventListener("submit", (event) => { event.preventDefault(); shadow("get"); namedShadows(); });
$("shadow-update").addEventListener("click", async () => {
  let desired;
  try { desired = JSON.parse($("shadow-desired").value); } catch (e) { $("shadow-document").textContent = `not JSON: ${e.message}`; return; }
  await shadow("update", JSON.stringify({ state: { desired } }));
  await shadow("get");
});

// ---- messages --------------------------------------------------------------------------

const MAX_SHOWN = 200;
function showMessage(source, seen, direction) {
  const table = $("messages");
  if (!table.firstChild) table.appendChild(row(["Time", "", "On", "Topic", "From", "Payload"], "th"));
  const note = seen.dropped_before ? ` (${seen.dropped_before} not shown: the browser was behind)` : "";
  const payload = seen.bytes > seen.payload.length ? `${seen.payload}… (${seen.bytes} bytes)` : seen.payload;
  const tr = row([new Date().toLocaleTimeString(), direction, source, seen.topic, (seen.from || "") + note, payload]);
  tr.children[5].className = "payload";
  tr.dataset.topic = seen.topic;
  table.insertBefore(tr, table.children[1] || null);
  while (table.children.length > MAX_SHOWN + 1) table.lastChild.remove();
}
$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = { target: $("msg-target").value, topic: $("msg-topic").value, payload: $("msg-payload").value, qos: Number($("msg-qos").value) };
  try {
    await post("/messages", message);
    $("msg-status").textContent = "published";
    $("msg-status").className = "ok";
    showMessage(message.target, { topic: message.topic, from: "you", payload: message.payload, bytes: message.payload.length }, "sent");
  } catch (e) {
    $("msg-status").textContent = `refused: ${e.message}`;
    $("msg-status").className = "bad";
  }
});
$("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const target = $("watch-target").value, filter = $("watch-filter").value;
  const query = `target=${encodeURIComponent(target)}&filter=${encodeURIComponent(filter)}&key=${encodeURIComponent(KEY)}`;
  const source = new EventSource(`/api/v1/messages/stream?${query}`);
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.textContent = `${target} ${filter}: connecting… `;
  item.append(label, button("Stop", () => { source.close(); item.remove(); }));
  item.dataset.watch = `${target} ${filter}`;
  $("watches").appendChild(item);
  source.addEventListener("open", () => { label.textContent = `${target} ${filter}: watching `; item.dataset.open = "yes"; });
  source.addEventListener("message", (e) => showMessage(target, JSON.parse(e.data), "received"));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) label.textContent = `${target} ${filter}: refused or ended (at most 8 watches; the host may have stopped) `;
  });
});

// ---- pages -----------------------------------------------------------------------------

const pages = { overview, components, deployments, devices, shadows: null, messages: null };
let current = null;
async function draw() {
  const loader = pages[current];
  if (!loader) return;
  try { await loader(); } catch (e) { showError(`${current}: ${e.message}`); }
}
function route() {
  const [page, ...rest] = location.hash.replace(/^#/, "").split("/");
  current = page in pages ? page : "overview";
  const selected = rest.length ? decodeURIComponent(rest.join("/")) : null;
  if (current === "components") component = selected;
  if (current === "deployments") deployment = selected;
  if (current === "devices") device = selected;
  for (const section of document.querySelectorAll(".page")) section.hidden = section.dataset.page !== current;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.getAttribute("href") === `#${current}`);
  if (current === "components" && !component) $("component-panel").hidden = true;
  if (current === "devices" && !device) $("device-panel").hidden = true;
  showError("");
  draw();
}
window.addEventListener("hashchange", route);
$("logout").addEventListener("click", async () => {
  const reply = await fetch("/logout", { method: "POST", headers: { "x-turf-key": KEY } });
  localStorage.removeItem("turf-key");
  document.body.textContent = reply.ok ? "logged out" : `log out failed: ${reply.status}`;
});
api("/status").then((s) => { $("host").textContent = `${s.thing_name} — turf ${s.version}`; }).catch((e) => showError(e.message));
route();
setInterval(draw, 2000);
