/* lakehouse console: one page, no build step. Every number comes from the REST API with the key the user
   entered (kept in sessionStorage, sent as X-API-Key); roles apply on the server, the console only hides what a
   role cannot do. Charts: Chart.js 4.6.2; lineage graph: Cytoscape.js 3.35.0 (both vendored, see
   scripts/vendor-console.sh). */
"use strict";

const KEY = "lakehouse-key";
const state = { me: null, tables: { q: "", format: "", catalog: "", sort: "name", desc: false, offset: 0, limit: 50 },
  timers: [], charts: [], cy: null };

// ---- helpers ------------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0; let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
}

function num(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"); }
function pct(x) { return x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)} %`; }
function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "—"; }

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  const init = { method, headers: { "X-API-Key": key || "" } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (r.status === 401) { signOut("Your key was not accepted; sign in again."); throw new ApiError(401, "unauthorized"); }
  if (!r.ok) throw new ApiError(r.status, (data && (data.detail || data.message)) || r.statusText);
  return data;
}

function clearTimers() {
  state.timers.forEach(clearInterval); state.timers = [];
  state.charts.forEach((c) => c.destroy()); state.charts = [];
  if (state.cy) { state.cy.destroy(); state.cy = null; }
}

function page(title, ...content) {
  const root = document.getElementById("page");
  root.replaceChildren(h("h1", { text: title }), ...content);
  document.title = `${title} · lakehouse`;
  return root;
}

function failure(e) { return h("p", { class: "error", role: "alert", text: `Error: ${e.message}` }); }

// ---- sign in ------------------------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.me = null;
  clearTimers();
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("page").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("key").focus();
}

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    state.me = await api("GET", "/console/whoami");
  } catch (e) {
    if (e.status !== 401) signOut(`Cannot sign in: ${e.message}`);
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  document.body.dataset.role = state.me.role;
  if (!location.hash || location.hash === "#") location.hash = "#/tables"; else route();
}

// ---- tables -------------------------------------------------------------------------------------------------

function sparkline(values) {
  if (!values || values.length < 2) return h("span", { class: "muted", text: values && values.length ? "" : "" });
  const w = 70; const hh = 18;
  const pts = values.map((v, i) => `${(i * w / (values.length - 1)).toFixed(1)},${(hh - (v / 100) * hh).toFixed(1)}`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", hh); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `score trend ${values.join(", ")}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.join(" ")); line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#0b4f9c"); line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  return svg;
}

function tierMix(tiers) {
  const total = Object.values(tiers || {}).reduce((a, b) => a + b, 0);
  if (!total) return h("span", { class: "muted", text: "—" });
  const label = Object.entries(tiers).map(([t, b]) => `${t} ${Math.round(100 * b / total)}%`).join(", ");
  return h("span", { class: "tiermix", role: "img", "aria-label": label, title: label },
    ...["hot", "warm", "cold"].filter((t) => tiers[t]).map((t) =>
      h("span", { class: `t-${t}`, style: `width:${(100 * tiers[t] / total).toFixed(1)}%` })));
}

function scoreCell(score) {
  if (score === null || score === undefined) return h("span", { class: "muted", text: "not measured" });
  return h("span", { class: score >= 80 ? "score-good" : score < 60 ? "score-bad" : "", text: score.toFixed(1) });
}

async function tablesPage() {
  const s = state.tables;
  const qs = new URLSearchParams({ sort: s.sort, desc: s.desc, limit: s.limit, offset: s.offset });
  if (s.q) qs.set("q", s.q);
  if (s.format) qs.set("format", s.format);
  if (s.catalog) qs.set("catalog", s.catalog);
  let data;
  try { data = await api("GET", `/console/tables?${qs}`); } catch (e) { page("Tables", failure(e)); return; }
  const search = h("input", { id: "table-search", type: "search", value: s.q, placeholder: "part of a name" });
  search.addEventListener("change", () => { s.q = search.value; s.offset = 0; tablesPage(); });
  const fmt = h("select", { id: "table-format" }, ...["", "delta", "iceberg"].map((f) =>
    h("option", { value: f, selected: f === s.format, text: f || "any" })));
  fmt.addEventListener("change", () => { s.format = fmt.value; s.offset = 0; tablesPage(); });
  const cat = h("select", { id: "table-catalog" }, h("option", { value: "", text: "any" }), ...data.catalogs.map((c) =>
    h("option", { value: c, selected: c === s.catalog, text: c })));
  cat.addEventListener("change", () => { s.catalog = cat.value; s.offset = 0; tablesPage(); });
  const cols = [["name", "Table"], [null, "Catalog"], ["format", "Format"], ["bytes", "Size"], ["files", "Files"],
    ["small_file_share", "Small files"], ["score", "Health"], [null, "Trend"], [null, "Tiers"],
    ["last_maintenance", "Last maintenance"], [null, "PII"]];
  const head = h("tr", {}, ...cols.map(([key, label]) => {
    if (!key) return h("th", { scope: "col", text: label });
    const sorted = s.sort === key;
    const b = h("button", { type: "button", "data-sort": key, text: label + (sorted ? (s.desc ? " ▼" : " ▲") : "") });
    b.addEventListener("click", () => { s.desc = sorted ? !s.desc : key !== "name"; s.sort = key; s.offset = 0; tablesPage(); });
    return h("th", { scope: "col", "aria-sort": sorted ? (s.desc ? "descending" : "ascending") : "none",
      class: ["bytes", "files", "small_file_share", "score"].includes(key) ? "num" : "" }, b);
  }));
  const rows = data.items.map((t) => h("tr", { "data-table": t.name },
    h("td", {}, h("a", { href: `#/table/${t.name}`, text: t.name })),
    h("td", { text: t.catalog || "lakehouse" }),
    h("td", { text: t.format }),
    h("td", { class: "num", "data-field": "bytes", "data-value": t.bytes ?? "", text: bytes(t.bytes) }),
    h("td", { class: "num", "data-field": "files", "data-value": t.files ?? "", text: num(t.files) }),
    h("td", { class: "num", "data-field": "small_file_share", "data-value": t.small_file_share ?? "",
      text: pct(t.small_file_share) }),
    h("td", { class: "num", "data-field": "score", "data-value": t.score ?? "" }, scoreCell(t.score)),
    h("td", {}, sparkline(t.trend)),
    h("td", {}, tierMix(t.tiers)),
    h("td", { text: t.last_maintenance ? `${t.last_maintenance.kind} ${t.last_maintenance.state}, ${when(t.last_maintenance.at)}` : "—" }),
    h("td", {}, ...(t.pii.length ? t.pii.map((k) => h("span", { class: "chip pii", text: k })) : ["—"])),
  ));
  const unmeasured = data.items.filter((t) => t.score === null).map((t) => t.name);
  const measure = state.me.runs_jobs && unmeasured.length
    ? h("button", { type: "button", id: "measure", class: "secondary", onclick: async (ev) => {
      ev.target.disabled = true; ev.target.textContent = "Measuring…";
      try { await api("POST", "/console/measure", { tables: unmeasured }); } catch (e) { alert(e.message); }
      tablesPage();
    } }, `Measure ${unmeasured.length} unmeasured`) : null;
  const pages = Math.max(1, Math.ceil(data.total / s.limit));
  const current = Math.floor(s.offset / s.limit) + 1;
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", id: "prev", disabled: s.offset === 0,
      onclick: () => { s.offset = Math.max(0, s.offset - s.limit); tablesPage(); } }, "Previous"),
    h("span", { id: "page-of", text: `page ${current} of ${pages} · ${num(data.total)} tables` }),
    h("button", { type: "button", class: "secondary", id: "next", disabled: current >= pages,
      onclick: () => { s.offset += s.limit; tablesPage(); } }, "Next"));
  page("Tables",
    h("div", { class: "filters" }, h("label", { for: "table-search", text: "Search" }), search,
      h("label", { for: "table-format", text: "Format" }), fmt,
      h("label", { for: "table-catalog", text: "Catalog" }), cat, measure),
    h("table", { id: "tables", "aria-label": "Tables" }, h("thead", {}, head), h("tbody", {}, ...rows)),
    pager);
  document.body.dataset.rendered = String(performance.now());  // benchmarks/console_bench.py reads it
}

// ---- table page ---------------------------------------------------------------------------------------------

const TIER_COLOR = { hot: "#b3261e", warm: "#b35c00", cold: "#1f5fa8" };

function histogramChart(canvas, info) {
  const labels = Object.keys(info.histogram);
  const datasets = [];
  if (info.histogram_before_last_optimize) {
    datasets.push({ label: `before ${info.histogram_before_last_optimize.operation} (v${info.histogram_before_last_optimize.version})`,
      data: labels.map((l) => info.histogram_before_last_optimize.histogram[l] || 0), backgroundColor: "#9aa5b8" });
  }
  datasets.push({ label: "now", data: labels.map((l) => info.histogram[l]), backgroundColor: "#0b4f9c" });
  if (window.Chart) {
    state.charts.push(new window.Chart(canvas, { type: "bar", data: { labels, datasets },
      options: { animation: false, responsive: true, plugins: { legend: { position: "bottom" } },
        scales: { y: { title: { display: true, text: "files" }, beginAtZero: true } } } }));
  }
}

function jobButtons(name, out) {
  if (!state.me.runs_jobs) return null;
  const run = async (kind, dryRun) => {
    out.replaceChildren(h("p", { text: `${dryRun ? "Planning" : "Running"} ${kind}…` }));
    try {
      const result = await api("POST", `/tables/${name}/jobs/${kind}`, { dry_run: dryRun });
      const apply = dryRun ? h("button", { type: "button", id: `apply-${kind}`,
        onclick: () => run(kind, false) }, `Apply ${kind}`) : null;
      out.replaceChildren(h("h3", { text: `${kind} ${dryRun ? "plan (dry run)" : "result"}` }),
        h("pre", { id: "job-result", text: JSON.stringify(result, null, 2).slice(0, 20000) }), apply,
        h("p", {}, h("a", { href: "#/jobs", text: "See it in Jobs" })));
    } catch (e) { out.replaceChildren(failure(e)); }
  };
  return h("div", { class: "filters" },
    ...["optimize", "vacuum", "tier"].map((k) =>
      h("button", { type: "button", id: `plan-${k}`, onclick: () => run(k, true) }, `${k[0].toUpperCase() + k.slice(1)} (dry run)`)));
}

async function tablePage(name) {
  page(name, h("p", { text: "Loading…" }));
  let info; let extra; let versions;
  try {
    [info, extra, versions] = await Promise.all([api("GET", `/tables/${name}`), api("GET", `/console/tables/${name}`),
      api("GET", `/tables/${name}/versions`)]);
  } catch (e) { page(name, failure(e)); return; }
  const out = h("div", { id: "job-output" });
  const canvas = h("canvas", { id: "histogram", role: "img", "aria-label": "file size histogram" });
  const pii = new Map((info.pii || []).map((t) => [t.column, t.kind]));
  const schema = h("table", { id: "schema", "aria-label": "Schema" },
    h("thead", {}, h("tr", {}, h("th", { text: "column" }), h("th", { text: "type" }), h("th", { text: "PII" }), h("th", { text: "masking" }))),
    h("tbody", {}, ...info.schema.map((f) => h("tr", {}, h("td", { text: f.name }), h("td", { text: f.type + (f.nullable === false ? " not null" : "") }),
      h("td", {}, pii.has(f.name) ? h("span", { class: "chip pii", text: pii.get(f.name) }) : "—"),
      h("td", { text: (info.masking || {})[f.name] || "—" })))));
  const strip = h("div", { class: "strip", id: "partitions-strip", role: "list", "aria-label": "partitions by tier" },
    ...extra.partitions.map((p) => {
      const label = `${Object.values(p.partition).join("/") || "(unpartitioned)"}: ${p.tier}, ${p.files} files, ${bytes(p.bytes)}`;
      return h("div", { class: "cell", role: "listitem", tabindex: 0, title: label, "aria-label": label,
        "data-tier": p.tier, style: `background:${TIER_COLOR[p.tier] || "#777"}` });
    }));
  const partTable = h("table", { id: "partitions", "aria-label": "Partitions" },
    h("thead", {}, h("tr", {}, h("th", { text: "partition" }), h("th", { class: "num", text: "files" }),
      h("th", { class: "num", text: "bytes" }), h("th", { text: "tier" }), h("th", { text: "belongs in" }))),
    h("tbody", {}, ...extra.partitions.slice(0, 200).map((p) => h("tr", {},
      h("td", { text: JSON.stringify(p.partition) }), h("td", { class: "num", text: num(p.files) }),
      h("td", { class: "num", "data-value": p.bytes, text: bytes(p.bytes) }), h("td", { text: p.tier }),
      h("td", { text: p.target ? (p.target === p.tier ? p.target : `${p.target} (tier moves it)`) : "—" })))));
  const timeline = h("ol", { class: "timeline", id: "versions", "aria-label": "Versions" },
    ...versions.slice().reverse().map((v) => h("li", { "data-version": v.version },
      h("span", { class: "op", text: (v.summary && v.summary["lakehouse.operation"]) || v.operation || (v.expired ? "expired" : "—") }),
      h("span", { text: `v${v.version}` }), h("span", { class: "muted", text: when(v.timestamp) }),
      v.expired ? h("span", { class: "muted", text: "expired" })
        : h("a", { href: `#/sql?table=${encodeURIComponent(name)}&as_of=${v.version}`, "data-as-of": v.version,
          text: "query as of this version" }))));
  const skipping = extra.skipping.length
    ? h("table", { id: "skipping", "aria-label": "Data skipping" },
      h("thead", {}, h("tr", {}, h("th", { text: "predicate" }), h("th", { class: "num", text: "queries" }),
        h("th", { class: "num", text: "files skipped" }), h("th", { class: "num", text: "row groups skipped" }))),
      h("tbody", {}, ...extra.skipping.map((s) => h("tr", {}, h("td", { text: s.predicate }), h("td", { class: "num", text: num(s.queries) }),
        h("td", { class: "num", text: s.error ? s.error : `${num(s.files_prunable)} of ${num(s.files)}` }),
        h("td", { class: "num", text: s.error ? "" : `${num(s.row_groups_prunable)} of ${num(s.row_groups)}` })))))
    : h("p", { class: "muted", text: "No predicates recorded yet: queries that filter this table appear here." });
  const storage = h("div", { id: "storage" }, h("p", { class: "muted", text: "Loading storage and cost…" }));
  const health = info.health;
  page(name,
    h("dl", { class: "kv card", id: "summary" },
      h("dt", { text: "format" }), h("dd", { text: info.format }),
      h("dt", { text: "location" }), h("dd", { text: info.location }),
      h("dt", { text: "files" }), h("dd", { "data-field": "files", "data-value": info.files, text: num(info.files) }),
      h("dt", { text: "size" }), h("dd", { "data-field": "bytes", "data-value": info.bytes, text: bytes(info.bytes) }),
      h("dt", { text: "rows" }), h("dd", { "data-field": "rows", "data-value": info.rows, text: num(info.rows) }),
      h("dt", { text: "small files" }), h("dd", { "data-field": "small_files", "data-value": health.small_files,
        text: `${num(health.small_files)} (${pct(health.small_file_ratio)})` }),
      h("dt", { text: "versions" }), h("dd", { text: num(info.versions) }),
      h("dt", { text: "partitioning" }), h("dd", { text: info.partitioning.join(", ") || "—" })),
    jobButtons(name, out), out,
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "h-hist" }, h("h2", { id: "h-hist", text: "File sizes" }), canvas),
      h("section", { class: "card", "aria-labelledby": "h-parts" }, h("h2", { id: "h-parts", text: "Partitions and tiers" }),
        h("p", { class: "legend" }, h("span", { class: "t-hot" }), "hot", h("span", { class: "t-warm" }), "warm",
          h("span", { class: "t-cold" }), "cold"), strip, partTable)),
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "h-versions" }, h("h2", { id: "h-versions", text: "Versions" }), timeline),
      h("section", { class: "card", "aria-labelledby": "h-skip" }, h("h2", { id: "h-skip", text: "Data skipping for queries run" }), skipping)),
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "h-schema" }, h("h2", { id: "h-schema", text: "Schema" }), schema),
      h("section", { class: "card", "aria-labelledby": "h-storage" }, h("h2", { id: "h-storage", text: "Storage and cost" }), storage)),
    h("section", { class: "card", "aria-labelledby": "h-policy" }, h("h2", { id: "h-policy", text: "Policy" }),
      h("pre", { id: "policy", text: JSON.stringify(extra.policy.effective, null, 2) })));
  histogramChart(canvas, extra);
  try {
    const st = await api("GET", `/tables/${name}/storage`);
    const rec = st.reconciliation;
    const cost = st.cost || {};
    const kinds = ["on_storage", "current", "retained", "expired", "metadata", "unaccounted"].filter((k) => rec[k]);
    storage.replaceChildren(
      h("dl", { class: "kv" }, ...kinds.flatMap((k) =>
        [h("dt", { text: k.replace("_", " ") }), h("dd", { "data-field": `storage-${k}`, "data-value": rec[k].bytes,
          text: `${num(rec[k].files)} files, ${bytes(rec[k].bytes)}` })]),
      h("dt", { text: "reclaimable now" }), h("dd", { "data-field": "reclaimable", "data-value": rec.reclaimable_bytes, text: bytes(rec.reclaimable_bytes) }),
      h("dt", { text: "monthly cost" }), h("dd", { id: "monthly-cost", "data-value": cost.monthly_cost ?? "",
        text: cost.error ? cost.error : `${cost.currency} ${Number(cost.monthly_cost).toFixed(6)} (all hot: ${Number(cost.all_hot_monthly_cost).toFixed(6)})` })));
  } catch (e) { storage.replaceChildren(failure(e)); }
}

// ---- jobs ---------------------------------------------------------------------------------------------------

async function jobsPage() {
  const body = h("tbody", {});
  const table = h("table", { id: "jobs", "aria-label": "Jobs" }, h("thead", {}, h("tr", {},
    ...["id", "kind", "table", "state", "by", "started", "seconds", ""].map((c) => h("th", { scope: "col", text: c })))), body);
  const detail = h("pre", { id: "job-detail", hidden: true });
  const stamp = h("p", { class: "muted", id: "jobs-updated" });
  page("Jobs", h("p", { text: "Running and recent jobs; dry runs appear as planned, with their plan. Updates every 2 s." }),
    stamp, table, detail);
  const refresh = async () => {
    let jobs;
    try { jobs = await api("GET", "/jobs?limit=100"); } catch (e) { stamp.replaceChildren(failure(e)); return; }
    body.replaceChildren(...jobs.map((j) => {
      const started = new Date(j.started_at);
      const end = j.finished_at ? new Date(j.finished_at) : new Date();
      return h("tr", { class: j.state === "running" ? "running" : "", "data-job": j.id, "data-kind": j.kind, "data-state": j.state },
        h("td", { text: j.id }), h("td", { text: j.kind }),
        h("td", {}, j.table_name ? h("a", { href: `#/table/${j.table_name}`, text: j.table_name }) : "—"),
        h("td", { text: j.state }), h("td", { text: j.actor }), h("td", { text: when(j.started_at) }),
        h("td", { class: "num", text: ((end - started) / 1000).toFixed(1) }),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => {
          detail.hidden = false; detail.textContent = JSON.stringify(j, null, 2);
        } }, "details")));
    }));
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  await refresh();
  state.timers.push(setInterval(refresh, 2000));
}

// ---- lineage ------------------------------------------------------------------------------------------------

async function lineagePage(dataset) {
  let tables;
  try { tables = await api("GET", "/console/tables?limit=500"); } catch (e) { page("Lineage", failure(e)); return; }
  const pick = h("select", { id: "lineage-dataset" }, ...tables.items.map((t) =>
    h("option", { value: t.name, selected: t.name === dataset, text: t.name })));
  pick.addEventListener("change", () => { location.hash = `#/lineage/${pick.value}`; });
  const chosen = dataset || (tables.items[0] && tables.items[0].name);
  const graphBox = h("div", { id: "lineage-graph", role: "img", "aria-label": `lineage graph of ${chosen}` });
  const edges = h("ul", { id: "lineage-edges", "aria-label": "Edges" });
  page("Lineage", h("div", { class: "filters" }, h("label", { for: "lineage-dataset", text: "Dataset" }), pick),
    graphBox, h("h2", { text: "Edges" }), edges);
  if (!chosen) { graphBox.replaceChildren(h("p", { text: "No tables yet." })); return; }
  let g;
  try { g = await api("GET", `/lineage?dataset=${encodeURIComponent(chosen)}&depth=3`); } catch (e) {
    graphBox.replaceChildren(h("p", { class: "muted", text: e.status === 404 ? `No lineage recorded for ${chosen} yet.` : e.message }));
    return;
  }
  const names = new Set(tables.items.map((t) => t.name));
  const nodeById = new Map(g.nodes.map((n) => [n.id, n]));
  const label = (n) => (n.type === "dataset" ? n.name : (n.name || n.id));
  const link = (n) => (n.type === "dataset" && names.has(n.name)
    ? h("a", { href: `#/table/${n.name}`, "data-node": n.id, text: n.name }) : h("span", { text: label(n) }));
  edges.replaceChildren(...g.edges.map((e) => h("li", {}, link(nodeById.get(e.from)), " → ", link(nodeById.get(e.to)))));
  if (window.cytoscape) {
    state.cy = window.cytoscape({
      container: graphBox,
      elements: [...g.nodes.map((n) => ({ data: { id: n.id, label: label(n), type: n.type, table: names.has(n.name) ? n.name : "" } })),
        ...g.edges.map((e, i) => ({ data: { id: `e${i}`, source: e.from, target: e.to } }))],
      layout: { name: "preset", positions: layered(g, chosen), fit: true, padding: 40 },
      maxZoom: 1.4,
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", color: "#111" } },
        { selector: "node[type = 'dataset']", style: { "background-color": "#0b4f9c", shape: "round-rectangle" } },
        { selector: "node[type = 'job']", style: { "background-color": "#b35c00", shape: "ellipse" } },
        { selector: "edge", style: { "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.5, "line-color": "#767b85", "target-arrow-color": "#767b85" } },
      ],
    });
    state.cy.on("tap", "node", (ev) => { const t = ev.target.data("table"); if (t) location.hash = `#/table/${t}`; });
  }
}

function layered(g, chosen) {
  /* columns by distance from the chosen dataset: upstream to the left, downstream to the right (lineage has
     cycles, a compaction reads and writes its table: each node keeps the first column it is reached in) */
  const level = new Map();
  const start = g.nodes.filter((n) => n.type === "dataset" && n.name === chosen).map((n) => n.id);
  start.forEach((id) => level.set(id, 0));
  const walk = (forward) => {
    let frontier = [...start];
    while (frontier.length) {
      const next = [];
      for (const e of g.edges) {
        const [a, b] = forward ? [e.from, e.to] : [e.to, e.from];
        if (frontier.includes(a) && !level.has(b)) { level.set(b, level.get(a) + (forward ? 1 : -1)); next.push(b); }
      }
      frontier = next;
    }
  };
  walk(true); walk(false);
  const columns = new Map();
  for (const n of g.nodes) {
    const l = level.has(n.id) ? level.get(n.id) : 0;
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(n.id);
  }
  const pos = {};
  for (const [l, ids] of columns) ids.forEach((id, i) => { pos[id] = { x: l * 230, y: (i - (ids.length - 1) / 2) * 110 }; });
  return (node) => pos[node.id()];
}

// ---- SQL ----------------------------------------------------------------------------------------------------

async function sqlPage(params) {
  const table = params.get("table");
  const asOf = params.get("as_of");
  const box = h("textarea", { id: "sql", "aria-label": "SQL query", spellcheck: "false" });
  box.value = table ? `SELECT * FROM ${table} LIMIT 100` : "SELECT 1 AS one";
  const asOfInput = h("input", { id: "as-of", placeholder: "ns.table=3", value: table && asOf ? `${table}=${asOf}` : "" });
  const result = h("div", { id: "sql-result", "aria-live": "polite" });
  const run = async () => {
    const body = { sql: box.value, as_of: {} };
    for (const part of asOfInput.value.split(",").map((x) => x.trim()).filter(Boolean)) {
      const [t, v] = part.split("="); if (t && v) body.as_of[t.trim()] = v.trim();
    }
    result.replaceChildren(h("p", { text: "Running…" }));
    try {
      const r = await api("POST", "/query", body);
      const cols = (r.columns || []).map((c) => c.name);
      result.replaceChildren(
        h("p", { class: "muted", id: "sql-count", text: `${r.rows.length} rows${r.truncated ? " (truncated)" : ""}` }),
        h("table", { id: "sql-table", "aria-label": "Query result" },
          h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, ...r.rows.map((row) => h("tr", {}, ...cols.map((c) => h("td", { text: row[c] === null ? "NULL" : String(row[c]) })))))));
    } catch (e) { result.replaceChildren(failure(e)); }
  };
  page("SQL", h("p", { text: "Read-only SQL over catalog tables (namespace.table), the API's sandbox; PII is masked unless your key is an admin's." }),
    h("label", { for: "sql", text: "Query" }), box,
    h("div", { class: "filters" }, h("label", { for: "as-of", text: "As of (table=version, …)" }), asOfInput,
      h("button", { type: "button", id: "run-sql", onclick: run }, "Run")), result);
  if (table) await run();
}

// ---- routing ------------------------------------------------------------------------------------------------

async function route() {
  if (!state.me) return;
  clearTimers();
  const raw = location.hash.slice(1) || "/tables";
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "tables";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === (name === "table" ? "tables" : name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const params = new URLSearchParams(query || "");
  if (name === "tables") await tablesPage();
  else if (name === "table" && parts[1]) await tablePage(decodeURIComponent(parts[1]));
  else if (name === "jobs") await jobsPage();
  else if (name === "lineage") await lineagePage(parts[1] ? decodeURIComponent(parts[1]) : null);
  else if (name === "sql") await sqlPage(params);
  else page("Not found", h("p", { text: `No page ${raw}` }));
  document.getElementById("main").focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn(document.getElementById("key").value.trim());
  });
  document.getElementById("signout").addEventListener("click", () => signOut());
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key); else signOut();
});
