// Polyak pages work without this file; it only adds sorting, live progress and refreshes.
"use strict";

// Tables with class "sortable": click a header to sort by it (cells may carry data-value).
function makeSortable(table) {
  const heads = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  heads.forEach((th, column) => {
    if (th.hasAttribute("data-nosort")) return;
    th.setAttribute("data-sortable", "");
    th.tabIndex = 0;
    const sort = () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      const key = row => {
        const cell = row.cells[column];
        if (!cell) return "";
        const v = cell.getAttribute("data-value");
        if (v !== null && v !== "" && !isNaN(Number(v))) return Number(v);
        return cell.textContent.trim().toLowerCase();
      };
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return ascending ? c : -c;
      });
      rows.forEach(r => body.appendChild(r));
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  });
}

// Regions marked data-live="name" are replaced by the same region of a fresh copy of the page
// every data-refresh seconds while the server marks the page as changing.
function liveRefresh() {
  const seconds = Number(document.body.getAttribute("data-refresh"));
  if (!seconds) return;
  setTimeout(async () => {
    try {
      const response = await fetch(location.href, { headers: { "Accept": "text/html" } });
      if (!response.ok) return liveRefresh();
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-live]").forEach(old => {
        if (old.contains(document.activeElement) && document.activeElement !== document.body) return;
        const name = old.getAttribute("data-live");
        const next = fresh.querySelector(`[data-live="${CSS.escape(name)}"]`);
        if (next) {
          old.replaceWith(next);
          next.querySelectorAll("table.sortable").forEach(makeSortable);
        }
      });
      const again = fresh.body.getAttribute("data-refresh");
      if (again) document.body.setAttribute("data-refresh", again); else document.body.removeAttribute("data-refresh");
    } catch (e) { /* the server may be restarting: try again later */ }
    liveRefresh();
  }, seconds * 1000);
}

function formatDuration(s) {
  if (!isFinite(s) || s < 0) return "—";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
}

// A run's progress over Server-Sent Events: the bar, the ETA and the status move as the trainer reports.
function followRun(box) {
  if (!window.EventSource) return;
  const source = new EventSource(box.getAttribute("data-events"));
  const bar = box.querySelector("progress");
  const text = box.querySelector("[data-progress-text]");
  source.addEventListener("progress", e => {
    const p = JSON.parse(e.data);
    box.setAttribute("data-connected", "true");
    if (bar && p.total_steps) { bar.max = p.total_steps; bar.value = p.step; }
    if (text) {
      const pct = p.total_steps ? (100 * p.step / p.total_steps).toFixed(1) + " %" : "";
      const speed = p.images_per_sec ? Math.round(p.images_per_sec) + " images/s" : "";
      text.textContent = [`epoch ${p.epoch}`, `step ${p.step} of ${p.total_steps}`, pct, speed,
                          "ETA " + formatDuration(p.eta_s)].filter(Boolean).join(" · ");
    }
  });
  source.addEventListener("status", e => {
    const s = JSON.parse(e.data).status;
    box.setAttribute("data-connected", "true");
    const badge = document.querySelector("[data-run-status]");
    if (badge && badge.textContent !== s) {
      badge.textContent = s;
      badge.className = "status status-" + s;
    }
    if (["completed", "failed", "cancelled"].includes(s) && box.getAttribute("data-status") !== s) {
      source.close();
      location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  // Destructive buttons ask first (without JavaScript they simply post).
  document.querySelectorAll("form[data-confirm]").forEach(f =>
    f.addEventListener("submit", e => { if (!confirm(f.getAttribute("data-confirm"))) e.preventDefault(); }));
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  document.querySelectorAll("[data-events]").forEach(followRun);
  liveRefresh();
});
