// The dashboard: wires the filter bar, the panels, the table, the dialog and live updates.

import { filterParams, request, signIn } from "./api.js";
import { bulkForm } from "./bulk.js";
import { cardsPanel, showFreshness } from "./cards.js";
import { chartExports, chartPanel, exportLinks } from "./charts.js";
import { AlertDialog } from "./detail.js";
import { filterBar } from "./filters.js";
import { followLive } from "./live.js";
import { regionsPanel } from "./regions.js";
import { Store, formatState } from "./state.js";
import { AlertsTable } from "./table.js";

const $ = (selector) => document.querySelector(selector);

async function showAccount() {
  const { data } = await request("/api/session/");
  $("#account-name").textContent = `${data.name} (${data.role})`;
  $("#account").hidden = false;
  $("#sign-out").addEventListener("click", async () => {
    await request("/api/session/", { method: "DELETE" }).catch(() => {});
    signIn();
  });
}

showAccount().catch(() => {});

const store = new Store(changed);
const filters = () => store.state.filters;
const commit = (change) => store.commit(change);
let shown = structuredClone(store.state);

const bar = filterBar($("#filters"), { commit });
const cards = cardsPanel($("#cards-panel"), filters);
const dialog = new AlertDialog($("#detail"), { changed: () => table.refresh() });
const bulk = bulkForm($("#bulk"), {
  selected: () => [...table.selected],
  done: ({ task }) => {
    table.clearSelection();
    if (task) table.refresh();
  },
});
const table = new AlertsTable($("#alerts-panel"), {
  view: () => store.state,
  setView: commit,
  open: (alertId) => dialog.open(alertId),
  selectionChanged: (ids) => bulk.show(ids),
});
const charts = [
  chartPanel($("#trends-panel"), "trends", filters, {
    field: "day",
    pick: (day) => commit((s) => Object.assign(s.filters, { range: "custom", since: day, until: day })),
  }),
  chartPanel($("#companies-panel"), "top_companies", filters, {
    field: "company",
    pick: (company) => commit((s) => { s.filters.company = [company]; }),
  }),
  regionsPanel($("#regions-panel"), filters, (region) => commit((s) => { s.filters.region = [region]; })),
];

function drawExports() {
  const params = filterParams(filters());
  exportLinks($("#trends-panel .exports"), chartExports("trends", params));
  exportLinks($("#companies-panel .exports"), chartExports("top_companies", params));
  exportLinks($("#regions-panel .exports"), chartExports("regions", params));
  exportLinks($("#alerts-panel .exports"), [
    { label: "CSV", href: table.exportHref(), file: "alerts.csv" },
  ]);
}

function changed(state) {
  const sameFilters = JSON.stringify(state.filters) === JSON.stringify(shown.filters);
  shown = structuredClone(state);
  bar.show(state.filters);
  drawExports();
  table.restart();
  if (sameFilters) return; // only the table's order or page size changed
  cards.refresh();
  for (const panel of charts) panel.refresh();
}

function refreshAll() {
  cards.refresh();
  table.refresh();
  for (const panel of charts) panel.refresh();
}

async function start() {
  bar.show(filters());
  drawExports();
  history.replaceState(null, "", formatState(store.state));
  // The cards and the table first; the charts (and their large library) once those are drawn.
  await Promise.allSettled([cards.refresh(), table.refresh()]);
  document.body.dataset.ready = "true";
  for (const panel of charts) panel.refresh();
  followLive({
    moved: refreshAll,
    status: (event, connected) => {
      if (connected) showFreshness($("#cards-panel"), $("#freshness"), event);
      else $("#freshness").textContent = "Live updates interrupted — reconnecting…";
    },
  });
}

start();
