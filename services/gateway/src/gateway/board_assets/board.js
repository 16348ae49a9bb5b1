// The order board: sign in, place orders, and watch each one move on, pushed by the gateway
// as Server-Sent Events. fetch() reads the stream, not EventSource, so that the token goes in
// the Authorization header: a token in a URL would end up in logs and browser history.
"use strict";

const SKUS = ["BOOK-1", "MUG-2", "TEE-3", "PEN-4"];
const RECONNECT_MS = [500, 1000, 2000, 5000];
// The strip reads the processes' metrics this often, and works its rates out over this many reads.
const HEALTH_EVERY_MS = 2000;
const HEALTH_WINDOW = 6;
const state = {
  config: null, token: null, customer: null, orders: new Map(), last: null, stream: null,
  health: [], healthTimer: null, switching: false,
};
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  return fetch(path, { ...options, headers });
}

async function problem(response) {
  try {
    const body = await response.json();
    const retry = response.headers.get("Retry-After");
    return `${response.status} ${body.title || ""}: ${body.detail || body.error || ""}${retry ? ` (retry after ${retry} s)` : ""}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function start() {
  state.config = await (await fetch("/board/config.json")).json();
  if (state.config.demo_token_path) {
    for (const customer of state.config.demo_customers) $("demo-customer").add(new Option(customer, customer));
    $("demo-form").hidden = false;
  }
  $("demo-form").addEventListener("submit", (event) => { event.preventDefault(); demoSignIn(); });
  $("token-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value.trim()); });
  $("place").addEventListener("click", () => place(false));
  $("retry").addEventListener("click", () => place(true));
  $("sign-out").addEventListener("click", () => signOut(""));
  const saved = sessionStorage.getItem("dozen-token");
  if (saved) signIn(saved);
}

async function demoSignIn() {
  const response = await fetch(state.config.demo_token_path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ customer: $("demo-customer").value }),
  });
  if (!response.ok) { $("sign-in-error").textContent = await problem(response); return; }
  signIn((await response.json()).access_token);
}

async function signIn(token) {
  if (!token) return;
  state.token = token;
  const response = await api("/api/v1/orders?limit=1");
  if (!response.ok) { signOut(await problem(response)); return; }
  // The token's own subject: the page shows whose orders these are, as the gateway sees it.
  state.customer = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  sessionStorage.setItem("dozen-token", token);
  $("customer").textContent = state.customer;
  $("sign-in").hidden = true;
  $("orders").hidden = false;
  $("faults").hidden = !state.config.faults_path;
  $("health").hidden = !state.config.health_path;
  if ((state.config.health_path || state.config.faults_path) && !state.healthTimer) {
    // The strip and the fault panel (switched from `make fault` too) follow the system.
    const refresh = () => {
      if (state.config.health_path) readHealth();
      if (state.config.faults_path && !state.switching) showFaults();
    };
    refresh();
    state.healthTimer = setInterval(refresh, HEALTH_EVERY_MS);
  }
  follow();
}

function signOut(why) {
  if (state.stream) state.stream.abort();
  Object.assign(state, { token: null, customer: null, stream: null, last: null });
  state.orders.clear();
  sessionStorage.removeItem("dozen-token");
  render();
  $("sign-in-error").textContent = why;
  $("sign-in").hidden = false;
  $("orders").hidden = true;
  $("faults").hidden = true;
  $("health").hidden = true;
  clearInterval(state.healthTimer);
  state.healthTimer = null;
  state.health = [];
  $("retry").disabled = true;
  setLive(false);
}

async function place(retry) {
  if (!retry) {
    const sku = SKUS[Math.floor(Math.random() * SKUS.length)];
    const item = { sku, quantity: 1 + Math.floor(Math.random() * 3), unit_price_cents: 500 + 250 * SKUS.indexOf(sku) };
    state.last = { key: crypto.randomUUID(), body: JSON.stringify({ currency: "EUR", items: [item] }) };
  }
  const response = await api("/api/v1/orders", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": state.last.key },
    body: state.last.body,
  });
  $("retry").disabled = false;
  if (!response.ok) { $("place-result").textContent = await problem(response); return; }
  const order = await response.json();
  $("place-result").textContent = response.headers.get("Idempotent-Replayed")
    ? `Replayed: the same key answered the same order ${short(order.id)}; no second order was made.`
    : `Order ${short(order.id)} accepted (Idempotency-Key ${state.last.key}).`;
  update(order);
}

async function reload() {
  const response = await api("/api/v1/orders?limit=20");
  if (response.status === 401) { signOut(await problem(response)); return; }
  if (response.ok) for (const order of (await response.json()).items) update(order);
}

// Keep the stream open while signed in; after each (re)connect, read the orders again, since
// updates sent while it was down are not replayed.
async function follow() {
  const token = state.token;
  for (let attempt = 0; state.token === token; attempt++) {
    const controller = new AbortController();
    state.stream = controller;
    try {
      const response = await api(state.config.updates_path, { signal: controller.signal });
      if (response.status === 401) { signOut(await problem(response)); return; }
      if (response.ok) {
        setLive(true);
        attempt = 0;
        await reload();
        await readEvents(response.body, (kind, data) => (kind === "order" ? update(JSON.parse(data)) : reload()));
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(kind, data.join("\n"));
    }
  }
}

function stage(order) {
  return order.notified_at ? "notified" : order.published_at ? "published" : "accepted";
}

function update(order) {
  const known = state.orders.get(order.id);
  // A list read and a pushed update may cross: an order never moves back.
  const rank = { accepted: 0, published: 1, notified: 2 };
  if (!known || rank[stage(order)] >= rank[stage(known)]) state.orders.set(order.id, order);
  render();
}

const short = (id) => id.slice(0, 8);
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false }) + "." + iso.slice(20, 23);
const since = (from, to) => `+${Math.max(0, new Date(to) - new Date(from))} ms`;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function link(text, href) {
  const a = document.createElement("a");
  a.textContent = text;
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function render() {
  const rows = [...state.orders.values()].sort((a, b) => b.created_at.localeCompare(a.created_at)).map((order) => {
    const tr = document.createElement("tr");
    tr.dataset.orderId = order.id;
    tr.dataset.status = stage(order);
    const id = cell("");
    id.append(Object.assign(document.createElement("code"), { textContent: short(order.id), title: order.id }));
    tr.append(
      id,
      cell(`${(order.total_cents / 100).toFixed(2)} ${order.currency}`),
      cell(clock(order.created_at)),
      order.published_at ? cell(since(order.created_at, order.published_at)) : cell("…", "pending"),
      order.notified_at ? cell(since(order.created_at, order.notified_at)) : cell("…", "pending"),
    );
    const see = cell("");
    if (state.config.trace_url && order.trace_id) see.append(link("trace", state.config.trace_url.replace(/\/?$/, "/") + order.trace_id), " ");
    if (state.config.mail_url && order.notified_at) see.append(link("email", `${state.config.mail_url.replace(/\/$/, "")}/search?q=${order.id}`));
    tr.append(see);
    return tr;
  });
  $("rows").replaceChildren(...rows);
}

// The fault panel: each fault of the switchboard, a switch, and the verdict of its last run.
async function showFaults(busy = "") {
  const response = await api(state.config.faults_path);
  if (!response.ok) { $("fault-list").replaceChildren(cell(await problem(response))); return; }
  const items = (await response.json()).faults.map((fault) => {
    const li = document.createElement("li");
    li.dataset.fault = fault.name;
    li.dataset.on = String(fault.on);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = busy === fault.name ? "recovering…" : fault.on ? "Switch off" : "Switch on";
    button.disabled = Boolean(busy);
    button.addEventListener("click", () => switchFault(fault.name, !fault.on));
    li.append(Object.assign(document.createElement("strong"), { textContent: fault.name }),
      Object.assign(document.createElement("span"), { textContent: fault.description }), button);
    if (fault.verdict) li.append(verdictLine(fault.verdict));
    return li;
  });
  $("fault-list").replaceChildren(...items);
}

function verdictLine(verdict) {
  const sound = verdict.lost === 0 && verdict.duplicated === 0 && verdict.drained_seconds !== null;
  const drained = verdict.drained_seconds === null ? "not drained in time" : `drained in ${verdict.drained_seconds} s`;
  return Object.assign(document.createElement("span"), {
    className: `verdict ${sound ? "sound" : "broken"}`,
    textContent: `Last run: ${verdict.accepted} orders accepted while on, ${verdict.lost} lost, ` +
      `${verdict.duplicated} duplicated, ` +
      (verdict.dead_lettered ? `${verdict.dead_lettered} dead-lettered on purpose (notifier dlq replay), ` : "") +
      `${drained}.` + (verdict.note ? ` ${verdict.note[0].toUpperCase()}${verdict.note.slice(1)}.` : ""),
  });
}

async function switchFault(name, on) {
  state.switching = true;
  try {
    if (!on) await showFaults(name);
    const response = await api(`${state.config.faults_path}/${name}`, { method: on ? "PUT" : "DELETE" });
    if (!response.ok) $("place-result").textContent = await problem(response);
  } finally {
    state.switching = false;
  }
  await showFaults();
}

// The health strip: figures from the processes' own metrics, rates over the last few reads.
async function readHealth() {
  const response = await api(state.config.health_path);
  if (!response.ok) return;
  const now = { at: performance.now(), ...(await response.json()) };
  state.health = [...state.health.slice(1 - HEALTH_WINDOW), now];
  const first = state.health[0];
  const seconds = (now.at - first.at) / 1000;
  const sum = (values) => Object.values(values).reduce((total, value) => total + value, 0);
  $("health-rate").textContent = seconds > 0 ? `${((now.accepted_total - first.accepted_total) / seconds).toFixed(1)} orders/s` : "–";
  $("health-backlog").textContent = String(now.outbox_backlog);
  $("health-queued").textContent = String(sum(now.queues));
  $("health-queued").title = JSON.stringify(now.queues);
  $("health-dead").textContent = String(sum(now.dead_letters));
  $("health-dead").title = JSON.stringify(now.dead_letters);
  const notified = p99(first.notified_buckets, now.notified_buckets);
  $("health-p99").textContent = notified ?? "–";
  $("health-p99").dataset.known = String(notified !== null);
  $("health-source").textContent = `From ${now.scraped} of ${now.of} processes' /metrics; rates over the last ${seconds.toFixed(0)} s.`;
}

// The p99 of what was notified between two reads, as the histogram's bucket bound it falls in.
function p99(before, after) {
  const bounds = Object.keys(after).sort((a, b) => parseFloat(a) - parseFloat(b));
  const delta = (bound) => after[bound] - (before[bound] || 0);
  const total = delta("+Inf");
  if (!(total > 0)) return null;
  const bound = bounds.find((candidate) => delta(candidate) >= 0.99 * total);
  return bound === "+Inf" ? `> ${bounds[bounds.length - 2]} s` : `≤ ${Math.round(parseFloat(bound) * 1000)} ms`;
}

function setLive(live) {
  $("live").dataset.live = String(live);
  $("live").textContent = live ? "live" : "not connected";
}

document.addEventListener("DOMContentLoaded", start);
