// udp studio's page: everything lives in the studio process; this page shows it and asks it to act, through the
// JSON API with the token, and follows it live through server-sent events.

import { toHex, hexToBytes, parseHex, escapeText, decode, encodeText, hexDump } from "./bytes.js";
import { TrafficLog, remoteText, marksText } from "./log.js";
import { RateChart, formatRate, drawHistogram } from "./chart.js";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

// ---- traffic log -----------------------------------------------------------------------------------------------

let selected = null;
const log = new TrafficLog($("log"), $("log-spacer"), showDetail);
let paused = false;
let held = [];
let lastID = 0;

function showDetail(r) {
  selected = r;
  const bytes = hexToBytes(r.hex);
  $("detail-title").textContent =
    `#${r.id} ${r.direction === "in" ? "from" : "to"} ${remoteText(r)} · local port ${r.localPort} · ${r.length} bytes`;
  const lines = [hexDump(bytes), "", "UTF-8:   " + r.text];
  for (const enc of ["gb18030", "shift-jis", "latin1"]) lines.push(`${enc.padEnd(8)} ${escapeText(decode(bytes, enc))}`);
  const marks = marksText(r);
  if (marks) lines.push("marks:   " + marks);
  $("detail-body").textContent = lines.join("\n");
  $("detail-reply").disabled = false;
}

$("detail-reply").addEventListener("click", () => {
  if (!selected) return;
  $("send-to").value = remoteText(selected);
  const listener = selected.listener == null ? "" : String(selected.listener);
  if ([...$("send-from").options].some((o) => o.value === listener)) $("send-from").value = listener;
  $("send-text").focus();
});

const roundTrips = [];

function receive(records) {
  if (!records.length) return;
  let answered = false;
  for (const r of records) {
    if (r.roundTrip != null) { roundTrips.push(r.roundTrip); answered = true; }
  }
  if (roundTrips.length > 10000) roundTrips.splice(0, roundTrips.length - 10000);
  if (answered) drawHistogram($("rtt"), roundTrips);
  lastID = Math.max(lastID, records[records.length - 1].id);
  if (paused) {
    held.push(...records);
    if (held.length > 100000) held.splice(0, held.length - 100000);
    return;
  }
  log.add(records);
  updateCount();
}

function updateCount() {
  $("log-count").textContent = `${log.shown.length.toLocaleString()} shown of ${log.records.length.toLocaleString()}`;
}

function applyFilter() {
  const text = $("filter").value.trim();
  if (!text) { log.setFilter(null); updateCount(); return; }
  let test;
  if ($("filter-regex").checked) {
    let re;
    try { re = new RegExp(text, "i"); $("filter").classList.remove("bad"); } catch { $("filter").classList.add("bad"); return; }
    test = (s) => re.test(s);
  } else {
    const needle = text.toLowerCase();
    test = (s) => s.toLowerCase().includes(needle);
  }
  log.setFilter((r) => test(remoteText(r)) || test(String(r.localPort)) || test(r.text) || test(r.hex) || test(toHex(hexToBytes(r.hex))));
  updateCount();
}
$("filter").addEventListener("input", applyFilter);
$("show-encoding").addEventListener("change", () => {
  const encoding = $("show-encoding").value;
  log.textOf = encoding === "utf8" ? (r) => r.text : (r) => escapeText(decode(hexToBytes(r.hex), encoding));
  log.redraw();
});
$("filter-regex").addEventListener("change", applyFilter);

$("pause").addEventListener("click", () => {
  paused = !paused;
  $("pause").textContent = paused ? `Resume` : "Pause";
  if (!paused && held.length) { log.add(held); held = []; updateCount(); }
});
$("clear").addEventListener("click", async () => {
  await api("DELETE", "/api/datagrams").catch(() => {});
  log.clear();
  held = [];
  updateCount();
  $("detail-body").textContent = "";
});

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
$("export-jsonl").addEventListener("click", () =>
  download("udp-studio.jsonl", log.shown.map((r) => JSON.stringify(r)).join("\n") + "\n", "application/x-ndjson"));
$("export-csv").addEventListener("click", () => {
  const q = (v) => `"${String(v).replace(/"/g, '""')}"`;
  const rows = [["id", "time", "direction", "local_port", "remote_address", "remote_port", "length", "text", "hex", "marks"].join(",")];
  for (const r of log.shown) {
    rows.push([r.id, new Date(r.time * 1000).toISOString(), r.direction, r.localPort, q(r.remoteAddress), r.remotePort, r.length,
      q(r.text), r.hex, q(marksText(r))].join(","));
  }
  download("udp-studio.csv", rows.join("\n") + "\n", "text/csv");
});

// ---- listeners and rules ---------------------------------------------------------------------------------------

let listeners = [];

function renderListeners() {
  const list = $("listener-list");
  list.replaceChildren();
  for (const l of listeners) {
    const li = el("li");
    li.dataset.id = l.id;
    const info = el("div", undefined, "grow");
    const group = l.group ? ` + ${l.group}${l.source ? " from " + l.source : ""}${l.interface ? " on " + l.interface : ""}` : "";
    info.appendChild(el("span", `#${l.id} ${l.address}${group}`));
    const c = l.counters;
    const drops = l.kernelDrops ? ` · kernel drops ${l.kernelDrops.toLocaleString()}` : "";
    info.appendChild(el("small", `in ${c.received.toLocaleString()} (${c.receivedBytes.toLocaleString()} B) · out ${c.sent.toLocaleString()}${drops}` +
      (c.autoReplies || c.refusedReplies ? ` · auto ${c.autoReplies}, refused ${c.refusedReplies}` : "")));
    li.appendChild(info);
    const remove = el("button", "Stop");
    remove.title = "stop listening and close the socket";
    remove.addEventListener("click", () => api("DELETE", `/api/listeners/${l.id}`).then(refresh).catch(showError("listener-error")));
    li.appendChild(remove);
    list.appendChild(li);
  }
  for (const [select, keep] of [[$("send-from"), true], [$("rule-listener"), false]]) {
    const value = select.value;
    select.replaceChildren();
    if (keep) select.appendChild(new Option("new socket", ""));
    for (const l of listeners) select.appendChild(new Option(`#${l.id} ${l.address}`, String(l.id)));
    if ([...select.options].some((o) => o.value === value)) select.value = value;
  }
  renderRules();
}

function renderRules() {
  const list = $("rule-list");
  list.replaceChildren();
  const l = listeners.find((x) => String(x.id) === $("rule-listener").value);
  if (!l) return;
  l.rules.forEach((rule, index) => {
    const li = el("li");
    li.appendChild(el("span", `${index + 1}. ${rule.match} “${rule.pattern}” → “${rule.reply}”`, "grow"));
    const remove = el("button", "✕");
    remove.title = "remove rule";
    remove.addEventListener("click", () => {
      const rules = l.rules.filter((_, i) => i !== index);
      api("PUT", `/api/listeners/${l.id}/rules`, rules).then(refresh).catch(showError("rule-error"));
    });
    li.appendChild(remove);
    list.appendChild(li);
  });
}
$("rule-listener").addEventListener("change", renderRules);

function showError(id) {
  return (e) => { $(id).textContent = e.message; };
}

$("listener-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("listener-error").textContent = "";
  try {
    const spec = { address: $("listener-address").value.trim() };
    for (const field of ["group", "interface", "source"]) {
      const value = $(`listener-${field}`).value.trim();
      if (value) spec[field] = value;
    }
    await api("POST", "/api/listeners", spec);
    $("listener-address").value = "";
    await refresh();
  } catch (e) {
    $("listener-error").textContent = e.message;
  }
});

$("rule-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("rule-error").textContent = "";
  const l = listeners.find((x) => String(x.id) === $("rule-listener").value);
  if (!l) { $("rule-error").textContent = "add a listener first"; return; }
  const rule = { match: $("rule-match").value, pattern: $("rule-pattern").value, reply: $("rule-reply").value };
  try {
    await api("PUT", `/api/listeners/${l.id}/rules`, [...l.rules, rule]);
    $("rule-pattern").value = "";
    $("rule-reply").value = "";
    await refresh();
  } catch (e) {
    $("rule-error").textContent = e.message;
  }
});

// ---- send form: text and hex linked both ways --------------------------------------------------------------------

let sendAs = "text";
for (const radio of document.querySelectorAll("input[name=send-as]")) {
  radio.addEventListener("change", () => { sendAs = radio.value; });
}
function status(text, bad = false) {
  $("send-status").textContent = text;
  $("send-status").classList.toggle("bad", bad);
}
function textToHex() {
  if ($("send-encoding").value !== "utf8") { $("send-hex").value = ""; return; }
  try {
    $("send-hex").value = toHex(encodeText($("send-text").value, $("send-escapes").checked));
    status("");
  } catch (e) { status(e.message, true); }
}
function hexToText() {
  try {
    const bytes = parseHex($("send-hex").value);
    $("send-text").value = escapeText(decode(bytes, $("send-encoding").value));
    $("send-escapes").checked = true;
    status("");
  } catch (e) { status("hex: " + e.message, true); }
}
$("send-text").addEventListener("input", () => { sendAs = "text"; document.querySelector("input[value=text]").checked = true; textToHex(); });
$("send-hex").addEventListener("input", () => { sendAs = "hex"; document.querySelector("input[value=hex]").checked = true; hexToText(); });
$("send-escapes").addEventListener("change", textToHex);
$("send-encoding").addEventListener("change", textToHex);
$("send-file").addEventListener("change", async () => {
  const file = $("send-file").files[0];
  if (!file) return;
  if (file.size > 65507) { status("the file is larger than a UDP datagram (65,507 bytes)", true); return; }
  $("send-hex").value = toHex(new Uint8Array(await file.arrayBuffer()));
  sendAs = "hex";
  document.querySelector("input[value=hex]").checked = true;
  hexToText();
});

function currentRequest() {
  const request = { to: $("send-to").value.trim() };
  if (sendAs === "hex") request.hex = $("send-hex").value;
  else {
    request.text = $("send-text").value;
    if ($("send-escapes").checked) request.escapes = true;
    if ($("send-encoding").value !== "utf8") request.encoding = $("send-encoding").value;
  }
  const count = parseInt($("send-count").value, 10) || 1;
  if (count > 1) { request.count = count; request.interval = parseFloat($("send-interval").value) || 0; }
  if ($("send-from").value) request.from = parseInt($("send-from").value, 10);
  if ($("send-interface").value.trim()) request.interface = $("send-interface").value.trim();
  if ($("send-ttl").value !== "") request.ttl = parseInt($("send-ttl").value, 10);
  return request;
}

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const request = currentRequest();
  status(request.count > 1 ? `sending ${request.count}…` : "sending…");
  try {
    const result = await api("POST", "/api/send", request);
    status(`sent ${result.sent} datagram${result.sent === 1 ? "" : "s"} (${result.bytes} bytes) from ${result.from} to ${result.to.join(", ")}`);
  } catch (e) {
    status(e.message, true);
  }
});
$("send-stop").addEventListener("click", () => api("POST", "/api/send/stop").catch(() => {}));

// ---- saved packets -----------------------------------------------------------------------------------------------

let library = { packets: [], sequences: [] };

$("save-button").addEventListener("click", async () => {
  const name = $("save-name").value.trim();
  if (!name) { status("give the packet a name to save it", true); return; }
  const request = currentRequest();
  delete request.from;
  try {
    await api("PUT", `/api/packets/${encodeURIComponent(name)}`, { name, ...request });
    status(`saved “${name}”`);
    await refresh();
  } catch (e) { status(e.message, true); }
});

function renderSaved() {
  const needle = $("saved-search").value.trim().toLowerCase();
  const list = $("saved-list");
  list.replaceChildren();
  const matches = (p) => !needle || [p.name, p.to, p.text || "", p.hex || ""].some((s) => s.toLowerCase().includes(needle));
  for (const p of library.packets.filter(matches)) {
    const li = el("li");
    li.dataset.name = p.name;
    const info = el("div", undefined, "grow");
    info.appendChild(el("span", p.name));
    info.appendChild(el("small", `${p.to} · ${p.hex != null ? "hex " + p.hex : escapeText(p.text || "")}`));
    info.title = "load into the send form";
    info.addEventListener("click", () => {
      $("send-to").value = p.to;
      $("save-name").value = p.name;
      if (p.hex != null) { $("send-hex").value = p.hex; sendAs = "hex"; document.querySelector("input[value=hex]").checked = true; hexToText(); }
      else { $("send-text").value = p.text || ""; $("send-escapes").checked = !!p.escapes; sendAs = "text"; document.querySelector("input[value=text]").checked = true; textToHex(); }
      $("send-count").value = p.count || 1;
      if (p.interval != null) $("send-interval").value = p.interval;
    });
    li.appendChild(info);
    const send = el("button", "Send");
    send.addEventListener("click", () => api("POST", `/api/packets/${encodeURIComponent(p.name)}/send`)
      .then((r) => status(`sent “${p.name}”: ${r.sent} datagram${r.sent === 1 ? "" : "s"} to ${r.to.join(", ")}`))
      .catch((e) => status(e.message, true)));
    li.appendChild(send);
    const remove = el("button", "✕");
    remove.title = "delete";
    remove.addEventListener("click", () => api("DELETE", `/api/packets/${encodeURIComponent(p.name)}`).then(refresh).catch((e) => status(e.message, true)));
    li.appendChild(remove);
    list.appendChild(li);
  }
  for (const s of library.sequences.filter((s) => !needle || s.name.toLowerCase().includes(needle))) {
    const li = el("li");
    li.dataset.sequence = s.name;
    const total = s.steps.reduce((sum, step) => sum + step.delay, 0);
    const info = el("span", `▶ ${s.name} (${s.steps.length} step${s.steps.length === 1 ? "" : "s"}, ${total} ms)`, "grow");
    info.title = s.steps.map((step) => `${step.packet} ${step.delay}`).join("\n");
    li.appendChild(info);
    const run = el("button", "Run");
    run.addEventListener("click", () => {
      status(`sequence “${s.name}” running…`);
      api("POST", `/api/sequences/${encodeURIComponent(s.name)}/run`)
        .then((r) => status(`sequence “${s.name}”: sent ${r.sent}`)).catch((e) => status(`sequence “${s.name}”: ${e.message}`, true));
    });
    li.appendChild(run);
    const change = el("button", "Edit");
    change.title = "load into the sequence editor";
    change.addEventListener("click", () => {
      $("sequence-name").value = s.name;
      $("sequence-steps").value = s.steps.map((step) => `${step.packet} ${step.delay}`).join("\n");
    });
    li.appendChild(change);
    const remove = el("button", "✕");
    remove.title = "delete";
    remove.addEventListener("click", () => api("DELETE", `/api/packets/${encodeURIComponent(s.name)}`).then(refresh).catch(showError("sequence-error")));
    li.appendChild(remove);
    list.appendChild(li);
  }
}

// A step a line: the saved packet's name (which may hold spaces), then the delay after it in ms (0 when left out).
function parseSteps(text) {
  const steps = [];
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const match = /^(.*?)(?:\s+(\d+(?:\.\d+)?))?$/.exec(line);
    if (!match[1]) throw new Error(`line ${index + 1}: name a saved packet`);
    steps.push({ packet: match[1], delay: match[2] ? parseFloat(match[2]) : 0 });
  }
  if (!steps.length) throw new Error("give at least one step: a saved packet's name and a delay in ms");
  return steps;
}

$("sequence-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sequence-error").textContent = "";
  const name = $("sequence-name").value.trim();
  try {
    if (!name) throw new Error("give the sequence a name");
    await api("PUT", `/api/sequences/${encodeURIComponent(name)}`, { name, steps: parseSteps($("sequence-steps").value) });
    status(`saved sequence “${name}”`);
    await refresh();
  } catch (e) {
    $("sequence-error").textContent = e.message;
  }
});
$("sequence-stop").addEventListener("click", () => api("POST", "/api/send/stop").catch(showError("sequence-error")));
$("saved-search").addEventListener("input", renderSaved);

// ---- state, stats and the live stream ----------------------------------------------------------------------------

const chart = new RateChart($("chart"));
drawHistogram($("rtt"), roundTrips);

function showStats(snapshot) {
  listeners = snapshot.listeners;
  renderListeners();
  const t = snapshot.totals;
  $("totals").textContent = `in ${t.received.toLocaleString()} datagrams, ${t.receivedBytes.toLocaleString()} B · ` +
    `out ${t.sent.toLocaleString()}, ${t.sentBytes.toLocaleString()} B · listeners ${snapshot.listeners.length}`;
  const point = chart.sample(t);
  if (point) $("rate-now").textContent = `${formatRate(point.inRate)} in/s · ${formatRate(point.outRate)} out/s`;
}

async function refresh() {
  const state = await api("GET", "/api/state");
  library = state.library;
  renderSaved();
  listeners = state.snapshot.listeners;
  renderListeners();
  return state;
}

function connect() {
  const source = new EventSource(`/api/events?token=${encodeURIComponent(token)}&after=${lastID}`);
  source.addEventListener("open", () => { $("connection").textContent = "live"; $("connection").className = "connection on"; });
  source.addEventListener("records", (e) => receive(JSON.parse(e.data).records));
  source.addEventListener("stats", (e) => showStats(JSON.parse(e.data)));
  source.addEventListener("error", () => { $("connection").textContent = "reconnecting…"; $("connection").className = "connection off"; });
}

async function start() {
  if (!token) { document.body.textContent = "Open the address udp studio printed: it carries the access token."; return; }
  await refresh();
  const history = await api("GET", "/api/datagrams?limit=100000");
  receive(history.records);
  lastID = Math.max(lastID, history.last);
  connect();
  setInterval(() => api("GET", "/api/packets").then((l) => {
    if (JSON.stringify(l) !== JSON.stringify(library)) { library = l; renderSaved(); }
  }).catch(() => {}), 3000);
}

start().catch((e) => { $("connection").textContent = e.message; });
