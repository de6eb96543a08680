// The station page: one event stream from the gateway; a snapshot on every (re)connect, then
// scans, context, alarms and health as they happen. Silence longer than SILENCE means the gateway
// is gone: the banner shows and the stream is opened again until it answers.
"use strict";
(function () {
  const SILENCE = 4000;
  const LAST = 20;
  const words = JSON.parse(document.getElementById("words").textContent);
  const L = words.labels;
  const R = words.reasons;
  const station = document.body.dataset.station;
  const $ = (id) => document.getElementById(id);
  let source = null;
  let watchdog = null;
  const shown = new Set();

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function put(id, v) { $(id).textContent = v == null || v === "" ? "–" : v; }
  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(ts) {
    const d = new Date(ts * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function word(prefix, v) { return L[prefix + v] || v || "–"; }

  function lost(on) {
    $("lost").hidden = !on;
    document.body.classList.toggle("offline", on);
  }

  function context(c) {
    const active = c.state === "active";
    put("work_order", active ? c.work_order : null);
    put("operation", active ? c.operation : null);
    put("lot", active ? c.lot : null);
    put("operators", (c.operators || []).join(", "));
    $("idle").hidden = active;
  }

  function reason(s) {
    const named = R[s.reason_code];
    const said = s.message || s.reason || s.reason_code || "";
    if (!named) return [said, null];
    return [named, said && said !== named ? said : null];
  }

  function row(s) {
    const tr = el("tr", "s-" + s.status);
    tr.dataset.id = s.id;
    tr.dataset.status = s.status;
    tr.dataset.reason = s.reason_code || "";
    tr.dataset.shown = Date.now();
    tr.append(el("td", "t", s.ts ? clock(s.ts) : ""));
    // A GS1 label reads better decoded than as its element string: what tells labels apart first.
    const code = el("td", "code", s.gtin ? [s.serial, s.batch_lot, s.gtin].filter(Boolean).join(" · ") : s.value || "");
    code.dataset.value = s.value || "";
    code.title = (s.device ? s.device + ": " : "") + (s.value || "");
    tr.append(code);
    const outcome = el("td", "o");
    outcome.append(el("span", "badge", word("s_", s.status)));
    tr.append(outcome);
    const [main, detail] = reason(s);
    const why = el("td", "why", main);
    if (detail) why.append(el("span", "detail", detail));
    why.title = s.message || "";
    tr.append(why);
    return tr;
  }

  function scans(list) {
    shown.clear();
    list.forEach((s) => shown.add(s.id));
    $("scans").replaceChildren(...list.slice(0, LAST).map(row));
    $("no-scans").hidden = list.length > 0;
  }

  function scan(s) {
    if (shown.has(s.id)) return;
    shown.add(s.id);
    const body = $("scans");
    body.prepend(row(s));
    while (body.children.length > LAST) body.lastElementChild.remove();
    $("no-scans").hidden = true;
  }

  function alarms(list) {
    $("alarms").replaceChildren(...list.map((a) => {
      const li = el("li", null, (a.device || "") + " " + (a.tag || "") + ": " + (a.alarm || ""));
      const detail = [a.value != null ? L.value + " " + a.value : null, a.limit != null ? L.limit + " " + a.limit : null,
        a.since ? L.since + " " + clock(a.since) : null].filter(Boolean).join(" · ");
      li.append(el("span", "detail", detail));
      return li;
    }));
    $("no-alarms").hidden = list.length > 0;
  }

  function state(s) { return s === "connected" ? "ok" : s === "starting" ? "meh" : "bad"; }

  function health(h) {
    $("devices").replaceChildren(...(h.devices || []).map((d) => {
      const li = el("li", state(d.state), d.device + " — " + word("d_", d.state));
      li.dataset.device = d.device;
      li.dataset.state = d.state;
      const detail = d.error || d.reason || (d.rate != null ? d.rate + " /s" : "");
      if (detail) li.append(el("span", "detail", detail));
      return li;
    }));
    const link = (h.sinks || []).map((k) => {
      const li = el("li", state(k.state), (k.kind === "mqtt" ? L.broker : k.name) + ": " + word("d_", k.state));
      li.dataset.sink = k.name;
      li.dataset.state = k.state;
      const detail = [k.state !== "connected" ? k.reason : null, k.backlog ? k.backlog + " " + L.rows : null].filter(Boolean).join(" · ");
      if (detail) li.append(el("span", "detail", detail));
      return li;
    });
    const f = h.buffer || {};
    const buffer = el("li", f.rows > 1000 ? "meh" : "ok", L.buffer + ": " + (f.rows != null ? f.rows : "–") + " " + L.rows);
    buffer.id = "buffer";
    buffer.dataset.rows = f.rows;
    if (f.oldest_unsent_age != null) buffer.append(el("span", "detail", L.oldest + " " + Math.round(f.oldest_unsent_age) + " s"));
    $("link").replaceChildren(...link, buffer);
  }

  function arm() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => { lost(true); connect(); }, SILENCE);
  }

  function alive() { lost(false); arm(); }

  function on(name, apply) {
    source.addEventListener(name, (e) => { apply(JSON.parse(e.data)); alive(); });
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("/api/events?station=" + encodeURIComponent(station));
    on("snapshot", (s) => { context(s.context); scans(s.scans); alarms(s.alarms); health(s.health); });
    on("scan", scan);
    on("context", context);
    on("alarms", alarms);
    on("health", health);
    source.onerror = () => {
      lost(true);
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
    };
    arm();
  }

  connect();
})();
