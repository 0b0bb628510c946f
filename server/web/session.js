// ddcoterm web UI, session page: starts asciinema-player on the recording (or follows a live session over
// Server-Sent Events), turns the command list into player markers and seek buttons, changes speed and the
// idle limit, and opens the player at the first match of the search that led here. No inline script: the
// page's Content-Security-Policy forbids it. Everything taken from the recording is set with textContent.
"use strict";
(function () {
  const box = document.getElementById("player");
  if (!box || typeof AsciinemaPlayer === "undefined") return;
  const buttons = Array.from(document.querySelectorAll("#timeline button[data-t]"));
  const markers = buttons.map((b) => [parseFloat(b.dataset.t), b.querySelector(".cmd").textContent]);
  const speedSel = document.getElementById("speed");
  const idleSel = document.getElementById("idle");
  const timeOut = document.getElementById("time");
  const live = box.dataset.live;
  let player = null;
  let castText = null;

  function clock(t) {
    const s = Math.floor(t);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
    return s >= 3600 ? Math.floor(s / 3600) + ":" + mm + ":" + String(s % 60).padStart(2, "0")
      : Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function options(autoPlay) {
    const o = {
      cols: parseInt(box.dataset.cols, 10) || 80,
      rows: parseInt(box.dataset.rows, 10) || 24,
      speed: parseFloat(speedSel.value) || 1,
      fit: "width",
      markers: markers,
      autoPlay: autoPlay,
      preload: true,
    };
    const idle = parseFloat(idleSel.value);
    if (idle > 0) o.idleTimeLimit = idle;
    return o;
  }

  function create(startAt, autoPlay) {
    if (player) player.dispose();
    box.textContent = "";
    const src = live ? { driver: "eventsource", url: live } : { data: castText };
    player = AsciinemaPlayer.create(src, box, options(live ? true : autoPlay));
    window.ddcotermPlayer = player;
    // The player's own startAt is not reported by getCurrentTime until playback starts: seek explicitly.
    if (!live && startAt > 0) player.seek(startAt);
    return player;
  }

  async function restart() {
    if (live) return;
    const t = player ? await player.getCurrentTime() : 0;
    create(t, false);
  }

  speedSel.addEventListener("change", restart);
  idleSel.addEventListener("change", restart);
  for (const b of buttons) {
    b.addEventListener("click", async () => {
      await player.seek(parseFloat(b.dataset.t));
      for (const o of buttons) o.classList.toggle("current", o === b);
    });
  }
  setInterval(async () => {
    if (!player) return;
    const t = await player.getCurrentTime();
    if (typeof t === "number" && !isNaN(t)) timeOut.textContent = clock(t);
    timeOut.dataset.seconds = String(t);
  }, 250);

  // The search's first match in the output: the visible text of each output event, escape sequences
  // removed and words normalised as the server's index does, searched for the first word or phrase.
  function firstMatch(text, q) {
    const norm = (s) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ");
    const terms = [];
    q.replace(/"([^"]*)"|(\S+)/g, (_, phrase, word) => {
      const t = norm(phrase !== undefined ? phrase : word).trim();
      if (t) terms.push(t);
    });
    if (!terms.length) return null;
    const strip = (s) => s
      .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "")
      .replace(/\x1b[P_^X][^\x1b]*\x1b\\/g, "")
      .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "")
      .replace(/\x1b[()*+#%]./g, "")
      .replace(/\x1b./g, "");
    let seen = " ";
    for (const line of text.split("\n")) {
      if (line[0] !== "[") continue;
      let ev;
      try { ev = JSON.parse(line); } catch (_) { continue; }
      if (ev[1] !== "o" || typeof ev[2] !== "string") continue;
      const before = seen.length;
      seen += norm(strip(ev[2]));
      for (const t of terms) {
        const at = seen.indexOf(t, Math.max(0, before - t.length));
        if (at >= 0) {
          return { time: ev[0], term: t, before: seen.slice(Math.max(0, at - 40), at), after: seen.slice(at + t.length, at + t.length + 40) };
        }
      }
      if (seen.length > 4096) seen = seen.slice(-256);
    }
    return null;
  }

  function showMatch(m, q) {
    const p = document.getElementById("match");
    p.textContent = "";
    p.classList.remove("hidden");
    if (!m) {
      p.textContent = "“" + q + "” is not in the output: it matched the command line.";
      return;
    }
    p.append("Match at " + clock(m.time) + ": …" + m.before);
    const mark = document.createElement("mark");
    mark.textContent = m.term;
    p.append(mark, m.after + "…");
    p.dataset.time = String(m.time);
  }

  if (live) {
    create(0, true);
    return;
  }
  fetch(box.dataset.recording, { credentials: "same-origin" })
    .then((r) => {
      if (!r.ok) throw new Error("the recording could not be loaded (HTTP " + r.status + ")");
      return r.text();
    })
    .then(async (text) => {
      castText = text;
      const q = box.dataset.q;
      const m = q ? firstMatch(text, q) : null;
      create(m ? m.time : 0, false);
      if (q) showMatch(m, q);
    })
    .catch((e) => {
      box.textContent = String(e.message || e);
      box.classList.add("error");
    });
})();
