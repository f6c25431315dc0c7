// stormboot dashboard: reads /api/v1/dashboard/stream (server-sent events,
// read with fetch so the token can go in a header, never in the URL) and
// draws the rack, the funnel, the rates, the pools and the lease store.
// No framework.
//
// Messages only update the data; the rack is drawn from a queue of changed
// machines, a few hundred per animation frame, so that however many
// machines one message (or a regrouping, or a search) touches, no frame
// makes the browser build or restyle more than a bounded number of cells.
"use strict";

// Letters by phase: the phase is text as well as colour.
const LETTER = ["D", "O", "B", "N", "F", "S", "K", "\u2713"];
const LABEL = ["DISCOVER seen", "offered", "bound", "NAK'd", "boot file (TFTP)",
  "script", "kernel/initrd", "booted (syslog)"];
// Funnel rows in boot order (NAK after bound).
const ORDER = [0, 1, 2, 3, 4, 5, 6, 7];
// Sparklines: sample key, caption, format, where.
const SPARKS = [["xdp", "answers/s by XDP", n, "rates"], ["userspace", "answers/s in userspace", n, "rates"],
  ["nak", "NAKs/s", n, "rates"], ["drops", "drops/s", n, "rates"], ["tftp_bytes", "TFTP bytes/s", bytes, "rates"],
  ["http_bytes", "HTTP bytes/s", bytes, "rates"], ["commits", "lease commits/s", n, "rates"],
  ["commit_p95_us", "commit p95, each second", (v) => v ? bound({ at_most_us: v }) : "\u2013", "commit-spark"]];
const TOKEN_KEY = "stormboot-token";
const GROUP_KEY = "stormboot-group-by";
// Machines per block of the rack (16 x 16, see the style sheet).
const BLOCK = 256;
// Cells drawn per animation frame at most, and the script time a frame may
// take: a frame's style and layout grow with the cells it touches.
const PER_FRAME = 100;
const FRAME_MS = 4;

// Read back by the browser tests: display lag per phase change, the main
// thread's long tasks (start and length, ms), and marks of what the page
// was doing: [start, what, ms, count].
const perf = window.__stormboot = {
  lags: [], longtasks: [], frames: [], marks: [], fulls: 0, deltas: 0, handle_max_ms: 0, frame_max_ms: 0,
};
function mark(t0, what, count) {
  const ms = performance.now() - t0;
  if (perf.marks.length >= 5000) perf.marks.shift();
  perf.marks.push([Math.round(t0), what, Math.round(ms), count]);
  return ms;
}
try {
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) perf.longtasks.push([Math.round(e.startTime), Math.round(e.duration)]);
  }).observe({ type: "longtask", buffered: true });
} catch (e) { /* no long-task timing in this browser */ }
// Frames longer than 100 ms: [start, ms, render start, style and layout
// start (both from the start), the scripts in them].
try {
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      if (e.duration < 100 || perf.frames.length >= 500) continue;
      perf.frames.push([Math.round(e.startTime), Math.round(e.duration),
        Math.round(e.renderStart ? e.renderStart - e.startTime : -1),
        Math.round(e.styleAndLayoutStart ? e.styleAndLayoutStart - e.startTime : -1),
        e.scripts.map((s) => `${s.invoker} ${Math.round(s.duration)} ms` +
          (s.forcedStyleAndLayoutDuration ? ` (forced layout ${Math.round(s.forcedStyleAndLayoutDuration)} ms)` : "")).join("; ")]);
    }
  }).observe({ type: "long-animation-frame", buffered: true });
} catch (e) { /* no frame timing in this browser */ }

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let groupBy = localStorage.getItem(GROUP_KEY) === "label" ? "label" : "subnet";
let rows = [];          // by id: [id, mac, ip, host, subnet, phase, at, stuck, label]
let cells = [];         // by id: the element, once drawn
let groups = new Map(); // group key -> .cells element
let order = [];         // group keys, in the order shown
let tabStop = null;     // the rack's one cell in the tab order
let subnets = [];
let samples = [];
let hits = new Set();
let live = false;
// Machines waiting to be drawn, in arrival order, and when the phase each
// is to show was reached (for the lag).
let queue = [];
let head = 0;
let waiting = [];
let changedAt = [];
let frame = 0;

// Numbers and times by hand: the browser's Intl formatters cost a long
// task the first time they are used.
function count(v) { return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
function clock(ms) { return new Date(ms).toTimeString().slice(0, 8); }
function n(v) { return v >= 100 ? count(Math.round(v)) : v.toFixed(1); }
function bytes(v) {
  const u = ["B", "kB", "MB", "GB"]; let i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return v.toFixed(i ? 1 : 0) + " " + u[i];
}
function ms(v) { return v == null ? "\u2013" : v < 1000 ? v + " ms" : (v / 1000).toFixed(1) + " s"; }
// A bucketed latency, as the daemon's text shows it: "≤ 2 ms", "> 5 s".
function bound(b) {
  if (!b) return "\u2013";
  const [sign, us] = b.at_most_us != null ? ["\u2264", b.at_most_us] : [">", b.above_us];
  return sign + " " + (us < 1000 ? us + " \u00b5s" : us < 1e6 ? us / 1000 + " ms" : us / 1e6 + " s");
}
function headers() { return token ? { Authorization: "Bearer " + token } : {}; }
function label(r) {
  return r[1] + (r[3] ? " " + r[3] : "") + (r[2] ? " " + r[2] : "") + ": " + LABEL[r[5]] + (r[7] ? ", stuck" : "");
}

function setup() {
  const legend = $("legend");
  ORDER.forEach((p) => {
    const li = document.createElement("li");
    li.innerHTML = `<span class="c p${p}" aria-hidden="true">${LETTER[p]}</span>${LABEL[p]}`;
    legend.appendChild(li);
  });
  const li = document.createElement("li");
  li.innerHTML = `<span class="c p2 stuck" aria-hidden="true">${LETTER[2]}</span>outlined: stuck`;
  legend.appendChild(li);
  const tbody = $("funnel").tBodies[0];
  ORDER.forEach((p) => {
    const tr = tbody.insertRow();
    tr.dataset.phase = p;
    tr.innerHTML = `<td class="bar"><span class="fill p${p}"></span><span class="name">${LETTER[p]} ${LABEL[p]}</span></td>` +
      `<td class="n count">0</td><td class="n p50">\u2013</td><td class="n p95">\u2013</td>`;
  });
  for (const [key, name, , where] of SPARKS) {
    const f = document.createElement("figure");
    f.dataset.rate = key;
    f.innerHTML = `<figcaption><span>${name}</span><span class="v">\u2013</span></figcaption>` +
      `<svg class="spark" viewBox="0 0 300 40" preserveAspectRatio="none" role="img" aria-label="${name}"><polyline points=""/></svg>`;
    $(where).appendChild(f);
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
    if (hits.size) open(hits.values().next().value);
  });
  $("group-by").value = groupBy;
  $("group-by").addEventListener("change", (e) => {
    groupBy = e.target.value;
    localStorage.setItem(GROUP_KEY, groupBy);
    reset();
  });
  // One listener each for the whole rack, whatever its size.
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
        const m = JSON.parse(data);
        handle(m);
        perf.handle_max_ms = Math.max(perf.handle_max_ms, Math.round(mark(t0, m.kind, m.rows.length)));
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
    rows = []; changedAt = [];
    for (const r of m.rows) rows[r[0]] = r;
    samples = m.samples.slice();
    reset();
    drawSparks(); drawDrops(m.drops); drawPools(m.pools);
  } else {
    perf.deltas++;
    for (const r of m.rows) {
      const old = rows[r[0]];
      rows[r[0]] = r;
      if (!old || old[5] !== r[5]) changedAt[r[0]] = r[6];
      enqueue(r[0]);
    }
    if (m.sample) { samples.push(m.sample); if (samples.length > 300) samples.shift(); drawSparks(); }
    if (m.drops) drawDrops(m.drops);
    if (m.pools) drawPools(m.pools);
  }
  drawFunnel(m.funnel, m.times);
  drawStore(m.store);
  $("status").textContent = `live \u00b7 ${count(rows.length)} machines \u00b7 ${clock(m.now)}`;
}

function enqueue(id) {
  if (waiting[id]) return;
  waiting[id] = true;
  queue.push(id);
  if (!frame) frame = requestAnimationFrame(draw);
}

// The rack from scratch (a new picture, another grouping): the old cells
// go at once, the new ones come through the queue.
function reset() {
  cells = []; groups = new Map(); order = []; tabStop = null;
  queue = []; head = 0; waiting = [];
  $("rack").textContent = "";
  for (const r of rows) if (r) enqueue(r[0]);
}

// Draws queued machines until this frame's share is used.
function draw() {
  frame = 0;
  const t0 = performance.now();
  const shown = [];
  let count = 0;
  while (head < queue.length && count < PER_FRAME) {
    const id = queue[head++];
    waiting[id] = false;
    const r = rows[id];
    let c = cells[id];
    if (!c) {
      // A plain element with the button role: a <button> is laid out as a
      // flex box around an anonymous block, four times the work per cell.
      c = document.createElement("div");
      c.setAttribute("role", "button");
      // One tab stop for the whole rack; arrow keys move inside it.
      c.tabIndex = tabStop ? -1 : 0;
      if (!tabStop) tabStop = c;
      c.dataset.id = id;
      cells[id] = c;
      const g = group(groupBy === "label" ? r[8] : r[4]);
      let b = g.lastElementChild;
      if (!b || b.childElementCount >= BLOCK) {
        b = document.createElement("div");
        b.className = "block";
        g.appendChild(b);
      }
      b.appendChild(c);
    }
    // The letter changes with the phase only; the rest is the class.
    if (c.dataset.phase !== String(r[5])) c.textContent = LETTER[r[5]];
    c.className = "c p" + r[5] + (r[7] ? " stuck" : "") + (hits.has(id) ? " hit" : "");
    c.dataset.phase = r[5];
    // The spoken label is written when the cell is focused (and while it
    // is): 10,000 labels rewritten during a storm would keep the
    // accessibility tree busy for nothing.
    if (c === document.activeElement) c.setAttribute("aria-label", label(r));
    if (changedAt[id] !== undefined) { shown.push(changedAt[id]); changedAt[id] = undefined; }
    count++;
    if ((count & 31) === 0 && performance.now() - t0 > FRAME_MS) break;
  }
  if (head < queue.length) {
    if (head > 4096) { queue = queue.slice(head); head = 0; }
    frame = requestAnimationFrame(draw);
  } else { queue = []; head = 0; }
  perf.frame_max_ms = Math.max(perf.frame_max_ms, Math.round(mark(t0, "draw", count)));
  if (shown.length) {
    // Shown once this frame is painted.
    setTimeout(() => {
      const now = Date.now();
      if (perf.lags.length < 200000) for (const at of shown) perf.lags.push(now - at);
    }, 0);
  }
}

// Subnets in configuration order (machines outside them last); labels in
// natural order (rack-2 before rack-10), machines without one last.
function precedes(a, b) {
  if (groupBy === "label") return a !== "" && (b === "" || a.localeCompare(b, "en", { numeric: true }) < 0);
  return a >= 0 && (b < 0 || a < b);
}

function group(key) {
  let g = groups.get(key);
  if (g) return g;
  const sec = document.createElement("section");
  sec.className = "group";
  const h = document.createElement("h3");
  h.textContent = groupBy === "label" ? key || "no label"
    : key >= 0 ? subnets[key] : "outside the configured subnets";
  g = document.createElement("div");
  g.className = "cells";
  g.setAttribute("role", "group");
  g.setAttribute("aria-label", h.textContent);
  sec.append(h, g);
  const i = order.findIndex((k) => precedes(key, k));
  $("rack").insertBefore(sec, i < 0 ? null : groups.get(order[i]).parentNode);
  order.splice(i < 0 ? order.length : i, 0, key);
  groups.set(key, g);
  return g;
}

function drawFunnel(funnel, times) {
  const total = funnel.reduce((a, b) => a + b, 0) || 1;
  for (const tr of $("funnel").tBodies[0].rows) {
    const p = +tr.dataset.phase;
    tr.querySelector(".count").textContent = count(funnel[p]);
    tr.querySelector(".fill").style.width = (100 * funnel[p] / total) + "%";
    tr.querySelector(".p50").textContent = ms(times[p].p50);
    tr.querySelector(".p95").textContent = ms(times[p].p95);
  }
}

function drawSparks() {
  for (const [key, , fmt] of SPARKS) {
    const f = document.querySelector(`figure[data-rate="${key}"]`);
    const vals = samples.map((s) => s[key] || 0);
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
    li.innerHTML = `<span>${k.replace(/_/g, " ")}</span><span>${count(v)}</span>`;
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
    li.innerHTML = `<span>${p.subnet}</span><span>${count(p.used)} / ${count(p.size)}</span>` +
      `<meter min="0" max="${p.size}" value="${p.used}" aria-label="pool use of ${p.subnet}"></meter>`;
    ul.appendChild(li);
  }
}

function drawStore(s) {
  $("store").textContent = s.commits
    ? `${count(s.commits)} commits in ${count(s.transactions)} transactions (${(s.commits / Math.max(s.transactions, 1)).toFixed(1)} per fsync), ${count(s.changes)} changes`
    : "no commits yet";
  $("commit-p50").textContent = bound(s.p50);
  $("commit-p95").textContent = bound(s.p95);
  $("commit-n").textContent = count(s.window_commits);
}

// Marks the machines found (redrawn through the queue: a search that
// matches 10,000 restyles them a frame's share at a time).
function search() {
  for (const id of hits) enqueue(id);
  hits = new Set();
  const q = $("q").value.trim().toLowerCase();
  const out = $("results");
  out.textContent = "";
  if (!q) return;
  for (const r of rows) {
    if (r && (r[1].includes(q) || r[2].includes(q) || r[3].toLowerCase().includes(q))) hits.add(r[0]);
  }
  for (const id of hits) enqueue(id);
  const p = document.createElement("span");
  p.textContent = `${count(hits.size)} found`;
  out.appendChild(p);
  let shown = 0;
  for (const id of hits) {
    if (shown++ === 12) break;
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
  if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    open(+c.dataset.id);
    return;
  }
  const list = c.closest(".cells").querySelectorAll(".c");
  const i = Array.prototype.indexOf.call(list, c);
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, ArrowUp: i - 16, ArrowDown: i + 16,
    Home: 0, End: list.length - 1 }[e.key];
  if (to === undefined || to < 0 || to >= list.length) return;
  e.preventDefault();
  c.tabIndex = -1;
  list[to].tabIndex = 0;
  tabStop = list[to];
  list[to].focus();
}

async function open(id) {
  const r = rows[id];
  const d = $("machine");
  $("machine-h").textContent = r[1] + (r[3] ? " (" + r[3] + ")" : "");
  $("machine-sum").textContent = `${r[2] || "no address yet"} \u00b7 ${LABEL[r[5]]}${r[7] ? " \u00b7 stuck" : ""}` +
    (r[8] ? ` \u00b7 ${r[8]}` : "");
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
