// The episode viewer: the episode's cameras play in sync (the first one leads) and every plot of
// the state and action vectors shows a cursor at the current frame. Clicking a plot seeks.
(function () {
  "use strict";
  const root = document.getElementById("viewer");
  if (!root) return;
  const base = `/api/v1/batches/${encodeURIComponent(root.dataset.batch)}/dataset/episodes/${root.dataset.episode}`;
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const state = { videos: [], plots: [], t: 0, duration: 0, fps: 30, ready: false };
  window.roboflowViewer = state;

  function cursorPlugin() {
    return {
      hooks: {
        draw: [(u) => {
          const x = Math.round(u.valToPos(state.t, "x", true));
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#111827";
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }],
      },
    };
  }

  function plot(series, times) {
    const box = document.createElement("div");
    box.className = "plot";
    box.dataset.feature = series.name;
    document.getElementById("plots").appendChild(box);
    const width = Math.max(box.clientWidth, 320);
    const opts = {
      title: series.name,
      width: width,
      height: 200,
      scales: { x: { time: false } },
      axes: [{ label: "seconds" }, {}],
      series: [{}].concat(series.names.map((name, i) => ({ label: name, stroke: palette[i % palette.length], width: 1.5 }))),
      plugins: [cursorPlugin()],
      cursor: { drag: { x: false, y: false } },
    };
    const u = new uPlot(opts, [times].concat(series.values), box);
    u.over.addEventListener("click", (ev) => seek(u.posToVal(ev.offsetX, "x")));
    state.plots.push(u);
  }

  function seek(t) {
    state.t = Math.min(Math.max(t, 0), state.duration);
    for (const v of state.videos) v.el.currentTime = v.from + state.t;
    redraw();
  }

  function redraw() {
    const frame = Math.min(Math.round(state.t * state.fps), Math.max(Math.round(state.duration * state.fps) - 1, 0));
    document.getElementById("clock").textContent = `${state.t.toFixed(2)} s · frame ${frame}`;
    document.getElementById("scrub").value = state.duration ? Math.round(1000 * state.t / state.duration) : 0;
    for (const u of state.plots) u.redraw(false, false);
  }

  function tick() {
    const lead = state.videos[0];
    if (lead) {
      const t = lead.el.currentTime - lead.from;
      if (t >= state.duration - 0.5 / state.fps && !lead.el.paused) {
        for (const v of state.videos) v.el.pause();
        setPlaying(false);
      }
      state.t = Math.min(Math.max(t, 0), state.duration);
      for (const v of state.videos.slice(1)) {
        if (Math.abs(v.el.currentTime - (v.from + state.t)) > 0.08) v.el.currentTime = v.from + state.t;
      }
      redraw();
    }
    requestAnimationFrame(tick);
  }

  function setPlaying(on) {
    document.getElementById("play").textContent = on ? "❚❚ Pause" : "▶ Play";
  }

  async function start() {
    const answer = await fetch(`${base}?max_points=3000`);
    if (!answer.ok) {
      const body = await answer.json().catch(() => ({ error: answer.statusText }));
      document.getElementById("plots").textContent = body.error;
      return;
    }
    const ep = await answer.json();
    state.fps = ep.fps;
    state.duration = ep.length / ep.fps;
    const times = ep.timestamps.map((t) => t - (ep.timestamps[0] || 0));
    for (const cam of ep.videos) {
      const fig = document.createElement("figure");
      const el = document.createElement("video");
      el.muted = true;
      el.playsInline = true;
      el.preload = "auto";
      el.dataset.camera = cam.camera;
      el.src = `${base}/videos/${encodeURIComponent(cam.camera)}`;
      el.addEventListener("loadedmetadata", () => { el.currentTime = cam.from_s + state.t; });
      const cap = document.createElement("figcaption");
      cap.textContent = cam.camera;
      fig.append(el, cap);
      document.getElementById("cameras").appendChild(fig);
      state.videos.push({ el: el, from: cam.from_s, to: cam.to_s });
    }
    for (const s of ep.series) plot(s, times);
    state.ready = true;
    document.getElementById("play").addEventListener("click", () => {
      const playing = state.videos.length && !state.videos[0].el.paused;
      if (!playing && state.t >= state.duration - 0.5 / state.fps) seek(0);
      for (const v of state.videos) playing ? v.el.pause() : v.el.play();
      setPlaying(!playing);
    });
    document.getElementById("scrub").addEventListener("input", (ev) => seek(state.duration * ev.target.value / 1000));
    requestAnimationFrame(tick);
  }

  start();
})();
