// Vigil console: keep the detections queue current without a reload. Polls the JSON feed of
// the page's own filters and rebuilds the rows (text only, never HTML from the server).
"use strict";
(function () {
  const table = document.getElementById("queue");
  if (!table) { return; }
  const feed = table.dataset.feed;
  const body = document.getElementById("queue-rows");
  const canSelect = body.dataset.select === "1";
  const known = new Set(Array.from(body.querySelectorAll("tr[data-id]"), (r) => r.dataset.id));
  const short = (t) => (t || "").slice(0, 16).replace("T", " ");

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (text !== null) { td.textContent = text; }
    row.appendChild(td);
    return td;
  }

  function render(items) {
    const checked = new Set(Array.from(body.querySelectorAll("input[name=ids]:checked"), (c) => c.value));
    const rows = items.map((a) => {
      const row = document.createElement("tr");
      row.dataset.id = a.id;
      row.className = "sev-" + a.severity + (known.has(a.id) ? "" : " fresh");
      const select = cell(row, null);
      if (canSelect) {
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = "ids"; box.value = a.id; box.checked = checked.has(a.id);
        box.setAttribute("aria-label", "select");
        select.appendChild(box);
      }
      const sev = document.createElement("span");
      sev.className = "sev " + a.severity; sev.textContent = a.severity;
      cell(row, null).appendChild(sev);
      const link = document.createElement("a");
      link.href = "/alerts/" + encodeURIComponent(a.id); link.className = "alert-link";
      link.textContent = a.rule;
      cell(row, null).appendChild(link);
      cell(row, a.tenant);
      cell(row, a.status + (a.escalation ? " (" + a.escalation + ")" : ""));
      cell(row, a.assignee || "");
      cell(row, a.sla_state, "sla " + a.sla_state.replace(" ", "-"));
      cell(row, short(a.next_due));
      cell(row, String(a.count));
      cell(row, short(a.created_at));
      return row;
    });
    if (rows.length === 0) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, "No alert matches these filters.").colSpan = 10;
      rows.push(row);
    }
    body.replaceChildren(...rows);
    items.forEach((a) => known.add(a.id));
  }

  async function poll() {
    try {
      const response = await fetch(feed, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        render(data.items);
        document.getElementById("total").textContent = String(data.total);
        for (const [name, value] of Object.entries(data.counts)) {
          const el = document.querySelector('[data-count="' + name + '"]');
          if (el) { el.textContent = String(value); }
        }
      }
    } catch (e) { /* offline for a moment: try again at the next tick */ }
  }
  setInterval(poll, 5000);
})();
