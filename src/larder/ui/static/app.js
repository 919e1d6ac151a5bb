// larder catalog: live search on the table list and metadata edits. No dependencies; the pages work
// without it (the search is a plain GET form).
"use strict";
(function () {
  const base = document.body.dataset.base || "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }
  function fmtInt(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"); }
  function ago(iso) {
    if (!iso) return "";
    const s = (Date.now() - Date.parse(iso.endsWith("Z") || iso.includes("+") ? iso : iso + "Z")) / 1000;
    const units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (const [u, size] of units) if (s >= size) return (s / size).toFixed(1).replace(/\.0$/, "") + " " + u + " ago";
    return Math.max(Math.round(s), 0) + " s ago";
  }

  // ------------------------------------------------------------------ live search (table list)
  const box = document.getElementById("table-search");
  const rows = document.getElementById("table-rows");
  if (box && rows) {
    const form = document.getElementById("table-search-form");
    const count = document.getElementById("table-count");
    const pager = document.getElementById("pager");
    let timer = null, seq = 0;
    const render = (data) => {
      rows.replaceChildren();
      for (const t of data.tables) {
        const name = el("td", {}, el("a", { class: "table-link", href: base + "/tables/" + encodeURIComponent(t.name) }, t.name));
        if (t.description) name.append(el("div", { class: "desc" }, t.description.length > 140 ? t.description.slice(0, 137) + "..." : t.description));
        if (t.matches.length) name.append(el("div", { class: "matches" }, "matched: " + t.matches.join(", ")));
        const tags = el("td", {});
        for (const [k, v] of Object.entries(t.tags)) tags.append(el("span", { class: "tag" }, v ? k + "=" + v : k));
        rows.append(el("tr", {}, name, el("td", {}, t.entity_keys.join(", ")), el("td", {}, t.timestamp_key || ""),
          el("td", {}, t.owner || ""), tags, el("td", { class: "num" }, String(t.features)),
          el("td", { class: "num" }, fmtInt(t.rows)), el("td", {}, ago(t.last_write)),
          el("td", { class: "num" }, t.version === null ? "" : String(t.version))));
      }
      if (!data.tables.length) {
        rows.append(el("tr", { class: "empty" }, el("td", { colspan: "9" }, data.query ? "No table matches \u201c" + data.query + "\u201d." : "The catalog has no feature tables yet.")));
      }
      count.replaceChildren();
      count.append(el("b", {}, fmtInt(data.total)), data.query ? " of " + fmtInt(data.catalog_tables) + " tables match \u201c" + data.query + "\u201d" : " tables");
      if (data.total > data.limit) count.append(" \u00b7 showing the first " + fmtInt(data.limit) + " (press Enter for pages)");
      if (pager) pager.hidden = true;
    };
    const search = () => {
      const mine = ++seq;
      const params = new URLSearchParams(new FormData(form));
      params.set("limit", "50");
      fetch(base + "/api/tables?" + params.toString(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((r) => r.ok ? r.json() : Promise.reject(r.status))
        .then((data) => {
          if (mine !== seq) return;
          render(data);
          const shown = new URLSearchParams(); if (box.value) shown.set("q", box.value);
          history.replaceState(null, "", base + "/tables" + (shown.toString() ? "?" + shown : ""));
          document.body.dataset.searched = box.value;
        })
        .catch(() => { if (mine === seq) count.textContent = "Search failed; press Enter to search again."; });
    };
    box.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // ------------------------------------------------------------------ time travel: pick a version
  const version = document.getElementById("version-select");
  if (version) version.addEventListener("change", () => version.form.submit());

  // ------------------------------------------------------------------ edits (only with --allow-edit)
  const edit = document.getElementById("edit-form");
  if (edit && document.body.dataset.editable === "true") {
    const status = document.getElementById("edit-status");
    const original = {};
    for (const line of edit.elements.tags.value.split("\n")) {
      const i = line.indexOf("="); if (line.trim()) original[(i < 0 ? line : line.slice(0, i)).trim()] = true;
    }
    edit.addEventListener("submit", (ev) => {
      ev.preventDefault();
      let who = localStorage.getItem("larder-editor");
      if (!who) { who = (window.prompt("Your name, recorded with the edit:") || "").trim(); if (who) localStorage.setItem("larder-editor", who); }
      const tags = {};
      for (const line of edit.elements.tags.value.split("\n")) {
        if (!line.trim()) continue;
        const i = line.indexOf("=");
        tags[(i < 0 ? line : line.slice(0, i)).trim()] = i < 0 ? "" : line.slice(i + 1).trim();
      }
      for (const k of Object.keys(original)) if (!(k in tags)) tags[k] = null;
      const body = { description: edit.elements.description.value, owner: edit.elements.owner.value, tags };
      const headers = { "Content-Type": "application/json", Accept: "application/json" };
      if (who) headers["X-Larder-User"] = who;
      status.className = "status"; status.textContent = "saving…";
      fetch(base + "/api/tables/" + encodeURIComponent(edit.dataset.table), { method: "PATCH", headers, body: JSON.stringify(body), credentials: "same-origin" })
        .then((r) => r.json().then((j) => ({ ok: r.ok, j })))
        .then(({ ok, j }) => {
          if (!ok) { status.className = "status error"; status.textContent = j.detail || "The edit was refused."; return; }
          status.textContent = j.changes.length ? "saved " + j.changes.length + " change(s)" : "nothing changed";
          if (j.changes.length) window.location.reload();
        })
        .catch(() => { status.className = "status error"; status.textContent = "The edit could not be sent."; });
    });
  }
})();
