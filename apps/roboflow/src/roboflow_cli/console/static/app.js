// Console behaviour shared by every page: live charts, action results, the optional token.
(function () {
  "use strict";
  const TOKEN_KEY = "roboflow-ui-token";

  function toast(text, bad) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.className = bad ? "show bad" : "show";
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.className = ""; }, 4000);
  }

  // Mutating requests carry the token when one was given (ROBOFLOW_UI_TOKEN on the server).
  document.body.addEventListener("htmx:configRequest", (ev) => {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token && ev.detail.verb !== "get") ev.detail.headers["Authorization"] = `Bearer ${token}`;
  });

  // An action (a button with data-done) reports how it went and refreshes the live parts.
  document.body.addEventListener("htmx:afterRequest", (ev) => {
    const el = ev.detail.elt;
    if (!el || !el.dataset || el.dataset.done === undefined) return;
    const xhr = ev.detail.xhr;
    if (ev.detail.successful) {
      toast(el.dataset.done, false);
      if (el.dataset.go) { window.location.assign(el.dataset.go); return; }
      htmx.trigger(document.body, "refresh");
      return;
    }
    let reason = xhr.statusText;
    try { reason = JSON.parse(xhr.responseText).error || reason; } catch (e) { /* not JSON */ }
    if (xhr.status === 401) reason += " (use the Token button)";
    toast(`${xhr.status}: ${reason}`, true);
  });

  const tokenButton = document.getElementById("token-button");
  function showToken() {
    tokenButton.textContent = sessionStorage.getItem(TOKEN_KEY) ? "Token ✓" : "Token";
  }
  tokenButton.addEventListener("click", () => {
    const given = window.prompt("Token for actions (ROBOFLOW_UI_TOKEN); empty to forget it", "");
    if (given === null) return;
    given ? sessionStorage.setItem(TOKEN_KEY, given.trim()) : sessionStorage.removeItem(TOKEN_KEY);
    showToken();
  });
  showToken();

  // Throughput charts read their data from a JSON script element that the live fragment renews.
  const charts = {};
  function drawCharts() {
    for (const box of document.querySelectorAll(".chart[data-source]")) {
      const source = document.getElementById(box.dataset.source);
      if (!source) continue;
      const data = JSON.parse(source.textContent);
      const series = [data.t, data.v];
      if (charts[box.id]) { charts[box.id].setData(series); continue; }
      charts[box.id] = new uPlot({
        width: Math.max(box.clientWidth, 320),
        height: 180,
        series: [{}, { label: "frames", stroke: "#2563eb", fill: "rgba(37,99,235,0.12)", width: 2 }],
        axes: [{}, { size: 60 }],
        legend: { show: false },
      }, series, box);
    }
  }
  document.body.addEventListener("htmx:afterSettle", drawCharts);
  window.addEventListener("resize", () => {
    for (const [id, u] of Object.entries(charts)) {
      const box = document.getElementById(id);
      if (box) u.setSize({ width: Math.max(box.clientWidth, 320), height: 180 });
    }
  });
  drawCharts();
})();
