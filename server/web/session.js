// ddcoterm web UI, session page: starts asciinema-player on the recording (or follows a live session over
// Server-Sent Events), turns the command list into player markers and seek buttons, changes speed and the
// idle limit, and opens the player at the first match of the search that led here (or at `#t=SECONDS`).
// A long recording (the page says so with data-windows) is never fetched whole: the player runs on a driver
// of ours that fetches the server's windows (a stored screen, then the events after it) for the moment
// shown, and the next window before the current one runs out. No inline script: the page's
// Content-Security-Policy forbids it. Everything taken from the recording is set with textContent.
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
  const windows = box.dataset.windows;
  let player = null;
  let castText = null;
  let duration = box.dataset.duration ? parseFloat(box.dataset.duration) : undefined;

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
    delete box.dataset.shown;
    let src;
    if (live) src = { driver: "eventsource", url: live };
    else if (windows) src = windowedDriver(windows, startAt);
    else src = { data: castText };
    player = AsciinemaPlayer.create(src, box, options(live ? true : autoPlay));
    window.ddcotermPlayer = player;
    // The player's own startAt is not reported by getCurrentTime until playback starts: seek explicitly.
    // A windowed player shows nothing before its first seek (the window's stored screen): seek at 0 too.
    if (!live && (startAt > 0 || windows)) {
      player.seek(startAt).then(() => {
        if (!windows) box.dataset.shown = String(startAt);
      });
    }
    return player;
  }

  // ---- Long recordings: the windowed driver ------------------------------------------------------------
  // asciinema-player accepts a function as its source (a driver: init/play/pause/seek/step/restart/stop/
  // getCurrentTime, fed through the callbacks it passes). Ours keeps the recording's own clock (the seek bar
  // is the whole duration, markers are the commands' times) and holds one window at a time: the screen
  // stored at or before a moment, then the events up to `at + span` (GET /api/v1/sessions/{id}/window).
  // Seeking outside the window fetches the window there; while playing, the next window (from the current
  // one's end) is fetched as soon as the current one starts, and taking it over repaints the same screen
  // in one task, so there is no visible gap. The idle limit cuts a pause longer than it to the limit while
  // playing, the clock jumping over the rest (the seek bar stays the recording's time).
  const SEEK_SPAN = 10;
  const PLAY_SPAN = 30;

  function showError(e) {
    const p = document.getElementById("match");
    p.textContent = String((e && e.message) || e);
    p.classList.remove("hidden");
    p.classList.add("error");
  }

  async function fetchWindow(api, at, span) {
    const r = await fetch(api + "/window?at=" + encodeURIComponent(String(at)) + "&span=" + span,
      { credentials: "same-origin" });
    if (!r.ok) throw new Error("the recording at " + clock(at) + " could not be loaded (HTTP " + r.status + ")");
    const lines = (await r.text()).split("\n");
    const head = JSON.parse(lines[0]);
    const offset = Number(head.ddcoterm_offset) || 0;
    const events = [];
    for (let i = 1; i < lines.length; i++) {
      if (!lines[i]) continue;
      let ev;
      try { ev = JSON.parse(lines[i]); } catch (_) { continue; }
      if (!Array.isArray(ev) || typeof ev[0] !== "number" || typeof ev[1] !== "string" || typeof ev[2] !== "string") continue;
      events.push([offset + ev[0], ev[1], ev[2]]);
    }
    return {
      offset: offset,
      end: Number(head.ddcoterm_end),
      last: head.ddcoterm_last === true,
      cols: parseInt(head.width, 10) || 80,
      rows: parseInt(head.height, 10) || 24,
      events: events,
    };
  }

  async function fetchDuration(api) {
    const r = await fetch(api + "/keyframes", { credentials: "same-origin" });
    if (!r.ok) throw new Error("the recording's length could not be loaded (HTTP " + r.status + ")");
    return Number((await r.json()).duration) || 0;
  }

  function windowedDriver(api, startAt) {
    // Fetched at once, while the player loads its terminal.
    const first = fetchWindow(api, startAt, SEEK_SPAN);
    const length = duration !== undefined ? Promise.resolve(duration) : fetchDuration(api);
    first.catch(() => {});
    length.catch(() => {});
    return function (cb, opts) {
      const speed = opts.speed > 0 ? opts.speed : 1;
      const idle = opts.idleTimeLimit > 0 ? opts.idleTimeLimit : Infinity;
      // The markers' times in the player's order (its seek bar names a marker by its index among those
      // before the end), and sorted for previous/next.
      const given = (opts.markers || []).map((m) => (Array.isArray(m) ? m[0] : m));
      const marks = given.slice().sort((a, b) => a - b);
      let total = 0; // the recording's duration
      let win = null; // the window held
      let shown = null; // the window whose events are on the terminal, up to `applied`, next one `idx`
      let idx = 0;
      let applied = 0;
      let next = null; // promise of the window after `win`
      let pos = 0; // the position while not playing
      let base = null; // while playing: the position at a wall-clock instant
      let timer = null;
      let gen = 0; // bumped by every seek and pause: a continuation of an older one stops

      const now = () => Math.min(base ? base.pos + ((performance.now() - base.wall) / 1000) * speed : pos, total);

      function applyUntil(t, playing) {
        const evs = shown.events;
        while (idx < evs.length && evs[idx][0] <= t) {
          const ev = evs[idx++];
          if (ev[1] === "o") cb.feed(ev[2]);
          else if (ev[1] === "r") {
            const [c, r] = ev[2].split("x").map((n) => parseInt(n, 10));
            if (c > 0 && r > 0) cb.resize(c, r);
          } else if (ev[1] === "i" && playing) cb.onInput(ev[2]);
        }
        applied = Math.max(applied, t);
      }

      // The terminal at `t` from window `w`: its stored screen, then its events up to `t`.
      function show(w, t) {
        if (w !== win) next = null;
        win = w;
        shown = w;
        idx = 0;
        applied = 0;
        cb.reset(w.cols, w.rows);
        applyUntil(t, false);
        applied = t;
      }

      const covers = (w, t) => w && t >= w.offset && (t <= w.end || w.last);

      function prefetch() {
        if (win && !win.last && !next) {
          next = fetchWindow(api, win.end, PLAY_SPAN);
          next.catch(() => {});
        }
      }

      function stopClock() {
        if (base) pos = now();
        base = null;
        clearTimeout(timer);
        timer = null;
      }

      function startClock() {
        base = { pos: pos, wall: performance.now() };
        prefetch();
        schedule(gen);
      }

      function schedule(g) {
        const ev = shown.events[idx];
        if (!ev) {
          windowDone(g);
          return;
        }
        let wait = ev[0] - now();
        if (wait > idle) {
          base.pos += wait - idle;
          wait = idle;
        }
        timer = setTimeout(() => {
          timer = null;
          if (g !== gen) return;
          applyUntil(now(), true);
          schedule(g);
        }, Math.max(0, (wait * 1000) / speed));
      }

      async function windowDone(g) {
        if (win.last) {
          base = null;
          pos = total;
          cb.setState("ended");
          return;
        }
        prefetch();
        let w;
        try {
          w = await next;
        } catch (e) {
          if (g !== gen) return;
          stopClock();
          cb.setState("idle", { reason: "paused" });
          showError(e);
          return;
        }
        if (g !== gen) return;
        show(w, win.end);
        prefetch();
        schedule(g);
      }

      function target(where) {
        const cur = now();
        if (typeof where === "number") return where;
        if (typeof where === "string") {
          if (where === "<<") return cur - 5;
          if (where === ">>") return cur + 5;
          if (where === "<<<") return cur - 0.1 * total;
          if (where === ">>>") return cur + 0.1 * total;
          if (where.endsWith("%")) return (parseFloat(where) / 100) * total;
          return parseFloat(where);
        }
        if (where && where.marker === "prev") {
          const before = (x) => marks.filter((m) => m < x).pop();
          let t = before(cur) ?? 0;
          if (base && cur - t < 1) t = before(t) ?? 0;
          return t;
        }
        if (where && where.marker === "next") return marks.find((m) => m > cur) ?? total;
        if (where && typeof where.marker === "number") return given.filter((m) => m < total)[where.marker];
        return NaN;
      }

      async function seek(where) {
        let t = target(where);
        if (typeof t !== "number" || isNaN(t)) return false;
        t = Math.min(Math.max(t, 0), total);
        const playing = base !== null;
        stopClock();
        const g = ++gen;
        let w = covers(win, t) ? win : null;
        if (!w) {
          try {
            w = await fetchWindow(api, t, playing ? PLAY_SPAN : SEEK_SPAN);
          } catch (e) {
            showError(e);
            return false;
          }
          if (g !== gen) return false;
        }
        if (w === shown && t >= applied) applyUntil(t, false);
        else show(w, t);
        pos = t;
        box.dataset.shown = String(t);
        if (playing) startClock();
        return true;
      }

      return {
        init: async () => {
          const [w, d] = await Promise.all([first, length]);
          total = Math.max(d, w.end || 0);
          win = w;
          return { cols: w.cols, rows: w.rows, duration: total };
        },
        play: async () => {
          if (!shown && !(await seek(pos))) return false;
          startClock();
          return true;
        },
        pause: () => {
          stopClock();
          gen++;
          // The screen at the moment paused: every event up to it (a timer due may not have fired yet), and
          // never a moment past the window shown (the next one not taken over yet).
          if (shown) {
            pos = Math.min(pos, shown.last ? total : shown.end);
            applyUntil(pos, true);
          }
          return true;
        },
        seek: seek,
        step: (n) => {
          if (base || !shown) return;
          if (n > 0) {
            const ev = shown.events[idx];
            if (ev) {
              applyUntil(ev[0], false);
              pos = ev[0];
            }
          } else if (idx >= 2) {
            const t = shown.events[idx - 2][0];
            show(shown, t);
            pos = t;
          }
        },
        restart: async () => {
          if (!(await seek(0))) return false;
          startClock();
          return true;
        },
        stop: () => {
          stopClock();
          gen++;
        },
        getCurrentTime: () => now(),
        getDuration: () => total,
      };
    };
  }

  async function restart() {
    if (live) return;
    delete box.dataset.shown;
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

  // `#t=SECONDS` (or `#t=[H:]M:S`): open at that moment.
  function hashTime() {
    const m = /^#t=([0-9:.]+)$/.exec(location.hash);
    if (!m) return 0;
    const t = m[1].split(":").reduce((acc, x) => acc * 60 + parseFloat(x), 0);
    return isFinite(t) && t > 0 ? t : 0;
  }

  if (live) {
    create(0, true);
    return;
  }
  // `?t=` (a search match's moment, given by the list or found by the server's index) wins over the rest.
  const given = box.dataset.start !== undefined ? parseFloat(box.dataset.start) : NaN;
  const serverMatch = document.getElementById("match").dataset.server === "1";
  if (windows) {
    create(isFinite(given) ? given : hashTime(), false);
    if (box.dataset.q && !serverMatch) {
      const p = document.getElementById("match");
      p.textContent = "This recording is long: it opens at the start, not at the search’s match (use the command list or the seek bar).";
      p.classList.remove("hidden");
    }
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
      if (isFinite(given)) {
        create(given, false);
        return;
      }
      const m = q ? firstMatch(text, q) : null;
      create(m ? m.time : hashTime(), false);
      if (q) showMatch(m, q);
    })
    .catch((e) => {
      box.textContent = String(e.message || e);
      box.classList.add("error");
    });
})();
