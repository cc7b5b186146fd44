// Fills the status page from /status.json every 15 s. Every value goes in as text
// (textContent), never as markup: verdict-log values come from alerts and feeds.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function set(id, text) { document.getElementById(id).textContent = text; }

function rows(id, items, cells) {
  const body = document.getElementById(id);
  body.replaceChildren(...items.map((item) => {
    const tr = el("tr");
    for (const [text, cls] of cells(item)) tr.appendChild(el("td", text, cls));
    return tr;
  }));
}

function chart(history, perDay) {
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (!history.length) return;
  const day0 = Date.parse(history[0][0].slice(0, 10) + "T00:00:00Z");
  const top = Math.max(perDay || 0, ...history.map((h) => h[1]), 1);
  const x = (t) => (600 * (Date.parse(t) - day0)) / 86400000;
  const y = (u) => 115 - (110 * u) / top;
  for (let h = 6; h < 24; h += 6) {  // hour ticks
    const tick = document.createElementNS(ns, "line");
    tick.setAttribute("x1", h * 25); tick.setAttribute("x2", h * 25);
    tick.setAttribute("y1", "0"); tick.setAttribute("y2", "120");
    tick.setAttribute("class", "tick");
    svg.appendChild(tick);
  }
  const points = history.map((h) => [x(h[0]), y(h[1])]);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" "));
  svg.appendChild(line);
  const [lx, ly] = points[points.length - 1];
  const dot = document.createElementNS(ns, "circle");
  dot.setAttribute("cx", lx.toFixed(1)); dot.setAttribute("cy", ly.toFixed(1)); dot.setAttribute("r", "3");
  svg.appendChild(dot);
  if (perDay) {
    const cap = document.createElementNS(ns, "line");
    cap.setAttribute("x1", "0"); cap.setAttribute("x2", "600");
    cap.setAttribute("y1", y(perDay)); cap.setAttribute("y2", y(perDay));
    cap.setAttribute("class", "cap");
    svg.appendChild(cap);
  }
}

function render(s) {
  const q = s.quota;
  set("tier", `tier ${s.tier}` + (q.limited ? "" : " (no local limit)"));
  set("used-today", q.limited ? `${q.used_today} / ${q.per_day}` : "not limited");
  set("used-minute", q.limited ? `${q.used_last_minute} / ${q.per_minute}` : "–");
  set("resets", q.resets_at || "–");
  set("cooldown", q.cooldown_until || "none");
  const pct = q.limited && q.per_day ? Math.min(100, (100 * q.used_today) / q.per_day) : 0;
  document.getElementById("quota-bar").style.width = `${pct}%`;
  chart(q.history || [], q.per_day);
  set("hit-rate", `${(100 * s.cache.hit_rate).toFixed(1)}%`);
  set("entries", s.cache.entries);
  set("today", `${s.cache.hits_today} hits, ${s.cache.misses_today} misses`);
  rows("risky-rows", s.risky, (r) => [[r.at], [r.value, "value"], [r.kind],
    [r.verdict, r.verdict], [r.score], [r.connector], [r.reason]]);
  document.getElementById("webhook").hidden = !s.webhook;
  if (s.webhook) {
    const jobs = Object.assign({ queued: 0, running: 0, done: 0, failed: 0 }, s.webhook.jobs);
    rows("job-rows", Object.entries(jobs), ([state, n]) => [[state], [n]]);
    set("dead", s.webhook.dead_letters);
  }
  document.getElementById("taxii").hidden = !s.taxii;
  if (s.taxii) {
    rows("collection-rows", s.taxii, (c) => [[c.title], [c.id, "value"], [c.objects], [c.last_added || "never"]]);
  }
  set("updated", `updated ${s.generated_at}`);
  document.body.dataset.loaded = "1";
}

async function refresh() {
  const failure = document.getElementById("failure");
  try {
    const resp = await fetch("/status.json", { credentials: "same-origin", cache: "no-store" });
    if (!resp.ok) throw new Error(`status.json answered ${resp.status}`);
    render(await resp.json());
    failure.hidden = true;
  } catch (err) {
    failure.textContent = `cannot refresh: ${err.message}`;
    failure.hidden = false;
  }
}

refresh();
setInterval(refresh, 15000);
