// ddcoterm web UI, session list: keeps the first page current without a reload. Every few seconds it asks
// the read API (same filters, the login cookie) for the newest sessions, updates the state, duration and exit
// of the rows shown and puts new sessions on top. Polling rather than a stream: one short request per open
// tab, works through any proxy and across server replicas, and stops with the tab. Text is set with
// textContent only.
"use strict";
(function () {
  const table = document.getElementById("sessions");
  if (!table || table.dataset.firstPage !== "true") return;
  const body = table.tBodies[0];
  const query = table.dataset.apiQuery;
  const q = new URLSearchParams(query).get("q") || "";
  const EVERY_MS = 3000;

  function short(t) { return t ? t.replace("T", " ").replace(/Z$/, "").slice(0, 19) : ""; }
  function duration(s) {
    const a = Date.parse(s.started_at), b = Date.parse(s.ended_at || s.last_activity);
    if (isNaN(a) || isNaN(b) || b < a) return "";
    const x = Math.floor((b - a) / 1000);
    if (x < 60) return x + "s";
    if (x < 3600) return Math.floor(x / 60) + "m " + String(x % 60).padStart(2, "0") + "s";
    return Math.floor(x / 3600) + "h " + String(Math.floor(x / 60) % 60).padStart(2, "0") + "m " + String(x % 60).padStart(2, "0") + "s";
  }
  function approval(s) {
    if (s.approval) return s.approval;
    const t = (s.tags || []).find((t) => t.startsWith("approval_case:"));
    return t ? t.slice("approval_case:".length) : "";
  }
  function cell(tr, cls, text) {
    const td = document.createElement("td");
    td.className = cls;
    if (text !== undefined) td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function setState(td, state) {
    td.textContent = "";
    const b = document.createElement("span");
    b.className = "badge state-" + state.replace(/[^a-z]/g, "");
    b.textContent = state;
    td.appendChild(b);
  }
  function build(s) {
    const tr = document.createElement("tr");
    tr.dataset.id = s.id;
    tr.dataset.state = s.state;
    cell(tr, "user", s.user || "?");
    cell(tr, "host", s.host);
    const cmd = cell(tr, "command");
    const a = document.createElement("a");
    a.className = "open";
    const m = s.search_match;
    a.href = "/sessions/" + encodeURIComponent(s.id) +
      (q ? (m && isFinite(m.t) ? "?t=" + Number(m.t).toFixed(3) + "&q=" : "?q=") + encodeURIComponent(q) : "");
    const code = document.createElement("code");
    code.textContent = s.command || "";
    a.appendChild(code);
    cmd.appendChild(a);
    if (q && m && typeof m.snippet === "string") {
      const small = document.createElement("small");
      small.className = "match";
      small.textContent = m.snippet;
      cmd.append(document.createElement("br"), small);
    }
    cell(tr, "start", short(s.started_at));
    cell(tr, "duration", duration(s));
    cell(tr, "exit", s.exit_status == null ? "" : String(s.exit_status));
    cell(tr, "rule", s.rule || "");
    cell(tr, "approval", approval(s));
    const bg = cell(tr, "breakglass");
    if (s.break_glass) { const b = document.createElement("span"); b.className = "badge warn"; b.textContent = "break glass"; bg.appendChild(b); }
    setState(cell(tr, "state"), s.state);
    return tr;
  }
  function update(tr, s) {
    if (tr.dataset.state !== s.state) {
      tr.dataset.state = s.state;
      setState(tr.querySelector("td.state"), s.state);
    }
    tr.querySelector("td.duration").textContent = duration(s);
    tr.querySelector("td.exit").textContent = s.exit_status == null ? "" : String(s.exit_status);
  }
  async function refresh() {
    let page;
    try {
      const r = await fetch("/api/v1/sessions?" + query, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!r.ok) return;
      page = await r.json();
    } catch (_) { return; }
    const rows = new Map(Array.from(body.rows).map((tr) => [tr.dataset.id, tr]));
    let anchor = body.firstChild;
    for (const s of page.sessions) {
      const tr = rows.get(s.id);
      if (tr) { update(tr, s); anchor = tr.nextSibling; continue; }
      body.insertBefore(build(s), anchor);
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
    }
  }
  setInterval(refresh, EVERY_MS);
})();
