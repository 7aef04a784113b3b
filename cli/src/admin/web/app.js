// The fleetmesh web view: a client of the admin API, like the CLI. The token comes from the
// link's fragment (`fleetmesh web`), which browsers never send to a server, and is kept in
// sessionStorage for this tab only.
"use strict";

const ROW = 24;          // px per node row (the list is virtualised: only visible rows exist)
const EVENTS_SHOWN = 200;

const $ = (id) => document.getElementById(id);
const state = { token: null, nodes: [], shown: [], status: null, refreshTimer: null };

function short(id) { return id ? id.slice(0, 12) : "-"; }

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path) {
  const reply = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (reply.status === 401) { logout("the token was refused"); throw new Error("unauthorized"); }
  if (!reply.ok) throw new Error(path + ": HTTP " + reply.status);
  return reply.json();
}

function logout(why) {
  sessionStorage.removeItem("fleetmesh-token");
  state.token = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = why || "";
}

async function refresh() {
  const [status, list] = await Promise.all([api("/api/status"), api("/api/nodes")]);
  state.status = status;
  state.nodes = list.nodes;
  $("summary").textContent =
    `${status.present} present of ${status.known} known · ${status.lsns} LSNs · ${status.subnets} subnets`;
  drawTopology(status.topology);
  filter();
}

function scheduleRefresh() {
  // Bursts of events (a morning join storm) become one refresh.
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refresh().catch((e) => console.warn(e));
  }, 300);
}

function drawTopology(topology) {
  const root = $("topology");
  const open = new Set([...root.querySelectorAll("details[open]")].map((d) => d.dataset.subnet));
  root.replaceChildren();
  for (const subnet of topology.subnets) {
    const d = el("details", { class: "subnet", "data-subnet": subnet.key });
    const children = subnet.lsns.reduce((n, l) => n + l.children.length, 0);
    d.append(el("summary", {}, `subnet ${subnet.key.slice(0, 16)} · ${subnet.lsns.length} LSN · ${children} children`));
    for (const lsn of subnet.lsns) {
      const line = el("div", { class: "lsn" });
      line.append(el("span", { "data-lsn": lsn.id }, "LSN " + short(lsn.id)), " ",
        el("span", { class: "path" }, lsn.path || "?"), " " + lsn.addr + " · " + lsn.children.length + " children");
      d.append(line);
    }
    // Children are drawn only when a subnet is opened: 30,000 of them would slow the page.
    const fill = () => {
      if (d.dataset.filled) return;
      d.dataset.filled = "1";
      for (const [i, lsn] of subnet.lsns.entries()) {
        const after = d.querySelectorAll(".lsn")[i];
        const box = el("div");
        for (const c of lsn.children) box.append(el("div", { class: "child", "data-child": c.id }, short(c.id) + " " + c.addr));
        after.after(box);
      }
    };
    d.addEventListener("toggle", () => d.open && fill());
    if (open.has(subnet.key) || topology.subnets.length <= 5) { d.open = true; fill(); }
    root.append(d);
  }
  if (topology.pending.length) root.append(el("p", {}, `${topology.pending.length} nodes waiting for an LSN`));
}

function filter() {
  const q = $("search").value.trim().toLowerCase();
  state.shown = !q ? state.nodes : state.nodes.filter((n) =>
    n.id.includes(q) || (n.addr || "").includes(q) || (n.lsn || "").startsWith(q) ||
    (n.tags || []).some((t) => t.includes(q)) || (n.subnet || "").startsWith(q));
  $("spacer").style.height = state.shown.length * ROW + "px";
  $("count").textContent = `${state.shown.length} shown of ${state.nodes.length}`;
  drawRows();
}

function drawRows() {
  const list = $("list");
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
  const last = Math.min(state.shown.length, first + Math.ceil(list.clientHeight / ROW) + 10);
  const rows = $("rows");
  rows.style.top = first * ROW + "px";
  rows.replaceChildren(...state.shown.slice(first, last).map((n) => {
    const r = el("div", { class: "row", "data-node": n.id, "data-present": String(n.present), "data-lsn": n.lsn || "" });
    const st = (n.present ? (n.is_lsn ? "LSN" : "yes") : "no") + (n.gsn ? " · GSN" : "");
    r.append(el("span", { title: n.id }, short(n.id)), el("span", {}, st), el("span", {}, short(n.lsn)),
      el("span", { title: n.nat ? "NAT: " + n.nat : "NAT class not reported" }, n.addr || "-"), el("span", {}, n.rtt_ms == null ? "-" : n.rtt_ms.toFixed(1) + " ms"),
      el("span", {}, (n.tags || []).join(", ")));
    return r;
  }));
}

function showEvent(e) {
  const li = el("li", { "data-type": e.type, "data-node": e.node || "" });
  const detail = e.reason || e.error || (e.rtt_ms != null ? e.rtt_ms.toFixed(1) + " ms" : "") ||
    (e.lsn ? "under " + short(e.lsn) : "") || (e.to ? short(e.from) + " → " + short(e.to) : "") ||
    (e.missed ? e.missed + " missed" : "");
  li.textContent = `${new Date().toLocaleTimeString()} ${e.type} ${short(e.node)} ${detail}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function follow() {
  const mine = state.token; // a new token (a new link) starts its own stream: this one ends
  for (;;) {
    try {
      const reply = await fetch("/api/events", { headers: { Authorization: "Bearer " + state.token } });
      if (reply.status === 401) return logout("the token was refused");
      $("live").className = "on";
      // Anything that happened while disconnected is caught up by one refresh.
      scheduleRefresh();
      const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
          if (!data) continue;
          const event = JSON.parse(data);
          showEvent(event);
          if (event.type !== "delivered") scheduleRefresh();
        }
      }
    } catch (e) {
      console.warn("event stream:", e);
    }
    $("live").className = "off";
    await new Promise((r) => setTimeout(r, 2000));
    if (state.token !== mine) return;
  }
}

function start(token) {
  state.token = token;
  sessionStorage.setItem("fleetmesh-token", token);
  $("login").hidden = true;
  $("app").hidden = false;
  refresh().then(follow).catch((e) => { $("summary").textContent = String(e); });
}

function fromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", location.pathname); // keep it out of the address bar
  return token;
}

// A link opened in a tab already showing the page changes only the fragment: no reload.
addEventListener("hashchange", () => { const t = fromFragment(); if (t) start(t); });

addEventListener("DOMContentLoaded", () => {
  const fragment = fromFragment();
  $("search").addEventListener("input", filter);
  $("list").addEventListener("scroll", () => requestAnimationFrame(drawRows));
  $("login").addEventListener("submit", (e) => { e.preventDefault(); start($("token").value.trim()); });
  const token = fragment || sessionStorage.getItem("fleetmesh-token");
  if (token) start(token); else logout();
});
