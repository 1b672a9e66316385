// Refresh the status page from /api/v1/status every poll interval. Without this script the page is
// complete, only static. The chart arithmetic mirrors exporter/status/charts.py exactly.
(() => {
  "use strict";
  const body = document.body;
  let period = Math.max(1, Number(body.dataset.pollInterval) || 5) * 1000;
  const WIDTH = 100, HEIGHT = 28, PAD = 2;

  const num = (v) => String(Math.floor(v * 10 + 0.5) / 10);

  function sparkline(values, slots) {
    const known = values.filter((v) => v !== null);
    if (known.length === 0 || slots < 2) return "";
    const low = Math.min(0, ...known);
    let high = Math.max(...known);
    if (high === low) high = low + 1;
    const offset = slots - values.length;
    const runs = [[]];
    values.forEach((value, i) => {
      if (value === null) { runs.push([]); return; }
      const x = (offset + i) / (slots - 1) * WIDTH;
      const y = HEIGHT - PAD - (value - low) / (high - low) * (HEIGHT - 2 * PAD);
      runs[runs.length - 1].push(num(x) + " " + num(y));
    });
    return runs.filter((r) => r.length > 0)
      .map((r) => "M" + r[0] + (r.length === 1 ? "h0" : r.slice(1).map((p) => "L" + p).join("")))
      .join("");
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function applyFigure(id, figure, slots) {
    const value = document.getElementById(id);
    const chart = document.getElementById(id + "-chart");
    if (!value || !chart) return;
    value.dataset.value = figure.value === null ? "" : String(figure.value);
    if (value.textContent !== figure.display) value.textContent = figure.display;
    chart.setAttribute("aria-label", figure.range_display);
    chart.querySelector("path").setAttribute("d", sparkline(figure.history, slots));
  }

  function applyCards(prefix, cards, slots) {
    cards.forEach((card, c) => {
      setText(`${prefix}${c}-note`, card.note);
      const clocks = document.getElementById(`${prefix}${c}-clocks`);
      if (clocks && "clocks" in card) {
        clocks.className = card.throttled ? "clocks throttled" : "clocks";
        if (clocks.textContent !== card.clocks) clocks.textContent = card.clocks;
      }
      card.figures.forEach((figure, f) => applyFigure(`${prefix}${c}-${f}`, figure, slots));
    });
  }

  function applySources(sources) {
    sources.forEach((source, i) => {
      const cell = document.getElementById(`src-${i}-state`);
      if (!cell) return;
      cell.className = "state-" + source.state;
      if (cell.textContent !== source.display) cell.textContent = source.display;
      setText(`src-${i}-kind`, source.kind);
    });
  }

  function apply(status) {
    if (status.layout !== body.dataset.layout) { window.location.reload(); return; }
    const slots = status.history.slots;
    applySources(status.sources);
    applyCards("m", status.models, slots);
    applyCards("g", status.gpus, slots);
    applyCards("c", status.cost, slots);
    applyCards("d", status.deployments, slots);
    setText("summary", status.summary);
    setText("cost-summary", status.cost_summary);
    const time = document.getElementById("taken-at");
    time.dateTime = new Date(status.taken_at_unix * 1000).toISOString();
    time.textContent = status.taken_at_display;
    body.dataset.takenAt = String(status.taken_at_unix);
    body.classList.remove("stale");
    period = Math.max(1, status.poll_interval_seconds) * 1000;
    setText("refresh-state", `refreshes every ${status.poll_interval_seconds} s`);
  }

  async function tick() {
    try {
      const response = await fetch(body.dataset.api, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      apply(await response.json());
    } catch (error) {
      body.classList.add("stale");
      setText("refresh-state", `not refreshed: ${error.message}; retrying`);
    } finally {
      setTimeout(tick, period);
    }
  }

  setTimeout(tick, period);
})();
