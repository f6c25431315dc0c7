// stormboot dashboard: reads /api/v1/dashboard/stream (server-sent events,
// read with fetch so the token can go in a header, never in the URL) and
// draws the rack, the funnel, the rates and the pools. No framework.
"use strict";

// Letters by phase: the phase is text as well as colour.
const LETTER = ["D", "O", "B", "N", "F", "S", "K", "\u2713"];
const LABEL = ["DISCOVER seen", "offered", "bound", "NAK'd", "boot file (TFTP)",
  "script", "kernel/initrd", "booted (syslog)"];
// Funnel rows in boot order (NAK after bound).
const ORDER = [0, 1, 2, 3, 4, 5, 6, 7];
const RATES = [["xdp", "answers/s by XDP", n], ["userspace", "answers/s in userspace", n],
  ["nak", "NAKs/s", n], ["drops", "drops/s", n], ["tftp_bytes", "TFTP bytes/s", bytes],
  ["http_bytes", "HTTP bytes/s", bytes], ["commits", "lease commits/s", n]];
const TOKEN_KEY = "stormboot-token";
// Machines per block of the rack (16 x 16, see the style sheet).
const BLOCK = 256;

// Read back by the browser tests: display lag per phase change and the
// main thread's long tasks.
const perf = window.__stormboot = { lags: [], longtasks: [], fulls: 0, deltas: 0, handle_max_ms: 0 };
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries()) perf.longtasks.push(e.duration); })
    .observe({ type: "longtask", buffered: true });
} catch (e) { /* no long-task timing in this browser */ }

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let rows = [];          // by id: [id, mac, ip, host, subnet, phase, at, stuck]
let cells = [];         // by id: the element
let groups = new Map(); // subnet index -> .cells element
let subnets = [];
let samples = [];
let hits = [];
let live = false;

function n(v) { return v >= 100 ? Math.round(v).toLocaleString("en") : v.toFixed(1); }
function bytes(v) {
  const u = ["B", "kB", "MB", "GB"]; let i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return v.toFixed(i ? 1 : 0) + " " + u[i];
}
function ms(v) { return v == null ? "\u2013" : v < 1000 ? v + " ms" : (v / 1000).toFixed(1) + " s"; }
function headers() { return token ? { Authorization: "Bearer " + token } : {}; }
function label(r) {
  return r[1] + (r[3] ? " " + r[3] : "") + (r[2] ? " " + r[2] : "") + ": " + LABEL[r[5]] + (r[7] ? ", stuck" : "");
}

function setup() {
  const legend = $("legend");
  ORDER.forEach((p) => {
    const li = document.createElement("li");
    li.innerHTML = `<span class="c p${p}" aria-hidden="true"></span>${LABEL[p]}`;
    legend.appendChild(li);
  });
  const li = document.createElement("li");
  li.innerHTML = `<span class="c p2 stuck" aria-hidden="true"></span>outlined: stuck`;
  legend.appendChild(li);
  const tbody = $("funnel").tBodies[0];
  ORDER.forEach((p) => {
    const tr = tbody.insertRow();
    tr.dataset.phase = p;
    tr.innerHTML = `<td class="bar"><span class="fill p${p}"></span><span class="name">${LETTER[p]} ${LABEL[p]}</span></td>` +
      `<td class="n count">0</td><td class="n p50">\u2013</td><td class="n p95">\u2013</td>`;
  });
  for (const [key, name] of RATES) {
    const f = document.createElement("figure");
    f.dataset.rate = key;
    f.innerHTML = `<figcaption><span>${name}</span><span class="v">\u2013</span></figcaption>` +
      `<svg class="spark" viewBox="0 0 300 40" preserveAspectRatio="none" role="img" aria-label="${name}"><polyline points=""/></svg>`;
    $("rates").appendChild(f);
  }
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").textContent = "";
    connect();
  });
  $("q").addEventListener("input", search);
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    if (hits.length) open(hits[0]);
  });
  $("rack").addEventListener("click", (e) => {
    const c = e.target.closest(".c");
    if (c) open(+c.dataset.id);
  });
  $("rack").addEventListener("keydown", move);
  $("rack").addEventListener("focusin", (e) => {
    const c = e.target.closest(".c");
    if (c) c.setAttribute("aria-label", label(rows[+c.dataset.id]));
  });
  $("close").addEventListener("click", () => $("machine").close());
  connect();
}

async function connect() {
  let resp;
  try {
    resp = await fetch("/api/v1/dashboard/stream", { headers: headers(), cache: "no-store" });
  } catch (e) {
    return retry("cannot reach the daemon");
  }
  if (resp.status === 401) {
    $("main").hidden = true; $("search").hidden = true;
    $("login").hidden = false;
    $("status").textContent = "token needed";
    if (token) $("login-error").textContent = "That token was refused.";
    $("token").value = "";
    token = null; sessionStorage.removeItem(TOKEN_KEY);
    $("token").focus();
    return;
  }
  if (!resp.ok) return retry("the daemon answered " + resp.status);
  $("login").hidden = true;
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  live = true;
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (e) { break; }
    if (chunk.done) break;
    buf += dec.decode(chunk.value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      const data = ev.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(l[5] === " " ? 6 : 5)).join("\n");
      if (data) {
        const t0 = performance.now();
        handle(JSON.parse(data));
        perf.handle_max_ms = Math.max(perf.handle_max_ms, Math.round(performance.now() - t0));
      }
    }
  }
  live = false;
  retry("stream ended");
}

function retry(why) {
  $("status").textContent = why + "; reconnecting\u2026";
  setTimeout(connect, 2000);
}

function handle(m) {
  if (m.kind === "full") {
    perf.fulls++;
    $("main").hidden = false; $("search").hidden = false;
    subnets = m.subnets;
    rows = []; cells = []; groups = new Map(); $("rack").textContent = "";
    samples = m.samples.slice();
    applyRows(m.rows, false);
    drawRates(); drawDrops(m.drops); drawPools(m.pools);
  } else {
    perf.deltas++;
    applyRows(m.rows, true);
    if (m.sample) { samples.push(m.sample); if (samples.length > 300) samples.shift(); drawRates(); }
    if (m.drops) drawDrops(m.drops);
    if (m.pools) drawPools(m.pools);
  }
  drawFunnel(m.funnel, m.times);
  drawStore(m.store);
  $("status").textContent = `live \u00b7 ${rows.length.toLocaleString("en")} machines \u00b7 ${new Date(m.now).toLocaleTimeString("en-GB")}`;
}

function group(subnet) {
  let g = groups.get(subnet);
  if (g) return g;
  const sec = document.createElement("section");
  sec.className = "group";
  const h = document.createElement("h3");
  h.textContent = subnet >= 0 ? subnets[subnet] : "outside the configured subnets";
  g = document.createElement("div");
  g.className = "cells";
  g.setAttribute("role", "group");
  g.setAttribute("aria-label", h.textContent);
  sec.append(h, g);
  // Subnets in configuration order, whatever order their machines come in.
  const after = [...groups.keys()].filter((k) => k > subnet || (subnet < 0 && k >= 0)).sort((a, b) => a - b)[0];
  $("rack").insertBefore(sec, after === undefined ? null : groups.get(after).parentNode);
  groups.set(subnet, g);
  return g;
}

function applyRows(list, timed) {
  const changed = [];
  const frag = new Map();
  for (const r of list) {
    const id = r[0];
    let c = cells[id];
    if (!c) {
      c = document.createElement("button");
      c.type = "button";
      // One tab stop for the whole rack; arrow keys move inside it.
      c.tabIndex = cells.length === 0 && id === 0 ? 0 : -1;
      c.dataset.id = id;
      cells[id] = c;
      let f = frag.get(r[4]);
      if (!f) { f = []; frag.set(r[4], f); }
      f.push(c);
    }
    const old = rows[id];
    rows[id] = r;
    // Only the class and the label change: the letter comes from the
    // class (CSS), so no text node is touched.
    c.className = "c p" + r[5] + (r[7] ? " stuck" : "");
    c.dataset.phase = r[5];
    // The spoken label is written when the cell is focused (and while it
    // is): 10,000 labels rewritten during a storm would keep the
    // accessibility tree busy for nothing.
    if (c === document.activeElement) c.setAttribute("aria-label", label(r));
    if (timed && (!old || old[5] !== r[5])) changed.push(r[6]);
  }
  for (const [s, list] of frag) {
    const g = group(s);
    for (const c of list) {
      let b = g.lastElementChild;
      if (!b || b.childElementCount >= BLOCK) {
        b = document.createElement("div");
        b.className = "block";
        g.appendChild(b);
      }
      b.appendChild(c);
    }
  }
  if (changed.length) {
    // Shown once the frame with them is painted.
    requestAnimationFrame(() => setTimeout(() => {
      const now = Date.now();
      if (perf.lags.length < 200000) for (const at of changed) perf.lags.push(now - at);
    }, 0));
  }
}

function drawFunnel(funnel, times) {
  const total = funnel.reduce((a, b) => a + b, 0) || 1;
  for (const tr of $("funnel").tBodies[0].rows) {
    const p = +tr.dataset.phase;
    tr.querySelector(".count").textContent = funnel[p].toLocaleString("en");
    tr.querySelector(".fill").style.width = (100 * funnel[p] / total) + "%";
    tr.querySelector(".p50").textContent = ms(times[p].p50);
    tr.querySelector(".p95").textContent = ms(times[p].p95);
  }
}

function drawRates() {
  for (const [key, , fmt] of RATES) {
    const f = document.querySelector(`figure[data-rate="${key}"]`);
    const vals = samples.map((s) => s[key]);
    const max = Math.max(1, ...vals);
    const step = 300 / 299;
    const off = 300 - vals.length * step;
    f.querySelector("polyline").setAttribute("points",
      vals.map((v, i) => `${(off + i * step).toFixed(1)},${(39 - 38 * v / max).toFixed(1)}`).join(" "));
    f.querySelector(".v").textContent = vals.length ? fmt(vals[vals.length - 1]) : "\u2013";
  }
}

function drawDrops(drops) {
  const ul = $("drops");
  ul.textContent = "";
  for (const [k, v] of Object.entries(drops)) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${k.replace(/_/g, " ")}</span><span>${v.toLocaleString("en")}</span>`;
    ul.appendChild(li);
  }
}

function drawPools(pools) {
  const ul = $("pools");
  ul.textContent = "";
  if (!pools.length) { ul.innerHTML = "<li>no dynamic pools</li>"; return; }
  for (const p of pools) {
    const li = document.createElement("li");
    li.style.flexWrap = "wrap";
    li.innerHTML = `<span>${p.subnet}</span><span>${p.used.toLocaleString("en")} / ${p.size.toLocaleString("en")}</span>` +
      `<meter min="0" max="${p.size}" value="${p.used}" aria-label="pool use of ${p.subnet}"></meter>`;
    ul.appendChild(li);
  }
}

function drawStore(s) {
  const [tx, commits, changes] = s;
  $("store").textContent = commits
    ? `${commits.toLocaleString("en")} commits in ${tx.toLocaleString("en")} transactions (${(commits / Math.max(tx, 1)).toFixed(1)} per fsync), ${changes.toLocaleString("en")} changes`
    : "no commits yet";
}

function search() {
  for (const id of hits) cells[id] && cells[id].classList.remove("hit");
  hits = [];
  const q = $("q").value.trim().toLowerCase();
  const out = $("results");
  out.textContent = "";
  if (!q) return;
  for (const r of rows) {
    if (r && (r[1].includes(q) || r[2].includes(q) || r[3].toLowerCase().includes(q))) hits.push(r[0]);
  }
  for (const id of hits) cells[id].classList.add("hit");
  const p = document.createElement("span");
  p.textContent = `${hits.length.toLocaleString("en")} found`;
  out.appendChild(p);
  for (const id of hits.slice(0, 12)) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label(rows[id]);
    b.addEventListener("click", () => open(id));
    out.appendChild(b);
  }
}

// Arrow keys move through the rack; Enter or Space opens the machine.
function move(e) {
  const c = e.target.closest(".c");
  if (!c) return;
  const list = c.closest(".cells").querySelectorAll(".c");
  const i = Array.prototype.indexOf.call(list, c);
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, ArrowUp: i - 16, ArrowDown: i + 16,
    Home: 0, End: list.length - 1 }[e.key];
  if (to === undefined || to < 0 || to >= list.length) return;
  e.preventDefault();
  c.tabIndex = -1;
  list[to].tabIndex = 0;
  list[to].focus();
}

async function open(id) {
  const r = rows[id];
  const d = $("machine");
  $("machine-h").textContent = r[1] + (r[3] ? " (" + r[3] + ")" : "");
  $("machine-sum").textContent = `${r[2] || "no address yet"} \u00b7 ${LABEL[r[5]]}${r[7] ? " \u00b7 stuck" : ""}`;
  const tb = $("events");
  tb.textContent = "";
  if (!d.open) d.showModal();
  const resp = await fetch("/api/v1/machines/" + r[1], { headers: headers(), cache: "no-store" });
  if (!resp.ok) { tb.innerHTML = `<tr><td colspan="4">the daemon answered ${resp.status}</td></tr>`; return; }
  const m = await resp.json();
  for (const e of m.events) {
    const tr = tb.insertRow();
    tr.dataset.phase = e.phase;
    for (const v of [new Date(e.at_ms).toISOString().slice(11, 23), e.phase, e.path, e.detail]) {
      tr.insertCell().textContent = v;
    }
  }
}

setup();
