// The alerts table: sortable columns, cursor pages, row selection, and the row detail.

import { filterParams, request, withQuery } from "./api.js";
import { Panel, element, format } from "./panel.js";

export class AlertsTable {
  /**
   * ``view()`` gives {filters, ordering, pageSize}; ``setView(change)`` records a new one;
   * ``open(alertId)`` shows one alert; ``selectionChanged(ids)`` follows the selection.
   */
  constructor(root, { view, setView, open, selectionChanged }) {
    this.root = root;
    this.view = view;
    this.open = open;
    this.selectionChanged = selectionChanged;
    this.body = root.querySelector("tbody");
    this.cursors = [null];
    this.selected = new Set();
    this.pageIds = [];
    this.panel = new Panel(root, {
      load: (signal) => request(this.url(), { signal }),
      draw: ({ data }) => this.draw(data),
    });
    this.wire(setView);
  }

  params() {
    const { filters, ordering, pageSize } = this.view();
    const params = filterParams(filters);
    if (ordering !== "-detected_at") params.set("ordering", ordering);
    params.set("page_size", String(pageSize));
    return params;
  }

  url() {
    const params = this.params();
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    return withQuery("/api/alerts/", params);
  }

  /** Back to the first page with nothing selected (the filters or the order changed). */
  restart() {
    this.cursors = [null];
    this.selected.clear();
    this.selectionChanged([]);
    return this.panel.refresh();
  }

  refresh() {
    return this.panel.refresh();
  }

  wire(setView) {
    for (const header of this.root.querySelectorAll("th[data-order] button")) {
      header.addEventListener("click", () => {
        const field = header.parentElement.dataset.order;
        const { ordering } = this.view();
        const next = ordering === `-${field}` ? field : `-${field}`;
        setView((state) => { state.ordering = next; });
      });
    }
    this.root.querySelector("#page-next").addEventListener("click", () => {
      if (!this.nextCursor) return;
      this.cursors.push(this.nextCursor);
      this.panel.refresh();
    });
    this.root.querySelector("#page-prev").addEventListener("click", () => {
      if (this.cursors.length < 2) return;
      this.cursors.pop();
      this.panel.refresh();
    });
    this.root.querySelector("#page-size").addEventListener("change", (event) => {
      setView((state) => { state.pageSize = Number(event.target.value); });
    });
    this.root.querySelector("#select-page").addEventListener("change", (event) => {
      for (const id of this.pageIds) {
        if (event.target.checked) this.selected.add(id);
        else this.selected.delete(id);
      }
      this.drawSelection();
    });
    this.body.addEventListener("keydown", (event) => this.onKey(event));
  }

  draw(page) {
    const { ordering, pageSize } = this.view();
    this.nextCursor = page.next_cursor;
    this.pageIds = page.results.map((alert) => alert.alert_id);
    this.root.querySelector("#alerts-count").textContent =
      `${format.count(page.count)} alert${page.count === 1 ? "" : "s"}`;
    this.root.querySelector("#page-number").textContent = `Page ${this.cursors.length}`;
    this.root.querySelector("#page-prev").disabled = this.cursors.length < 2;
    this.root.querySelector("#page-next").disabled = !page.next_cursor;
    this.root.querySelector("#page-size").value = String(pageSize);
    for (const header of this.root.querySelectorAll("th[data-order]")) {
      const field = header.dataset.order;
      const sort = ordering === field ? "ascending" : ordering === `-${field}` ? "descending" : null;
      if (sort) header.setAttribute("aria-sort", sort);
      else header.removeAttribute("aria-sort");
    }
    const focused = this.focusedRow();
    if (!page.results.length) {
      const cell = element("td", { colspan: "8", class: "empty", text: "No alerts for these filters" });
      this.body.replaceChildren(element("tr", {}, cell));
    } else {
      this.body.replaceChildren(...page.results.map((alert) => this.row(alert)));
    }
    this.drawSelection();
    this.refocus(focused);
  }

  /** The row (or its checkbox) that has the focus, so that a redraw can give it back. */
  focusedRow() {
    const active = document.activeElement;
    const row = this.body.contains(active) ? active.closest("tr[data-alert-id]") : null;
    return row && { alertId: row.dataset.alertId, checkbox: active !== row };
  }

  refocus(focused) {
    if (!focused) return;
    const row = [...this.body.rows].find((r) => r.dataset.alertId === focused.alertId);
    (focused.checkbox ? row?.querySelector("input[type=checkbox]") : row)?.focus();
  }

  row(alert) {
    const box = element("input", {
      type: "checkbox",
      "aria-label": `Select ${alert.alert_id}`,
      onchange: (event) => {
        if (event.target.checked) this.selected.add(alert.alert_id);
        else this.selected.delete(alert.alert_id);
        this.drawSelection();
      },
    });
    const row = element(
      "tr",
      { tabindex: "0", "data-alert-id": alert.alert_id, title: "Enter: details, Space: select" },
      element("td", { class: "select" }, box),
      element("td", { class: "when", text: format.shortTime(alert.detected_at), title: alert.detected_at }),
      element("td", { text: alert.company_name }),
      element("td", { text: alert.violation_type }),
      element("td", {}, element("span", { class: `badge ${alert.severity.toLowerCase()}`, text: alert.severity })),
      element("td", { class: "status", text: alert.status }),
      element("td", { class: "number", text: format.money(alert.amount) }),
      element("td", { text: alert.region || "—" }),
    );
    row.addEventListener("click", (event) => {
      if (event.target.closest("td.select")) return;
      this.open(alert.alert_id);
    });
    return row;
  }

  onKey(event) {
    const row = event.target.closest("tr[data-alert-id]");
    if (!row || event.target !== row) return;
    if (event.key === "Enter") {
      event.preventDefault();
      this.open(row.dataset.alertId);
    } else if (event.key === " ") {
      event.preventDefault();
      row.querySelector("input[type=checkbox]").click();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      next?.focus();
    }
  }

  drawSelection() {
    for (const row of this.body.querySelectorAll("tr[data-alert-id]")) {
      const on = this.selected.has(row.dataset.alertId);
      row.querySelector("input[type=checkbox]").checked = on;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", String(on));
    }
    const all = this.root.querySelector("#select-page");
    const onPage = this.pageIds.filter((id) => this.selected.has(id)).length;
    all.checked = onPage > 0 && onPage === this.pageIds.length;
    all.indeterminate = onPage > 0 && onPage < this.pageIds.length;
    this.selectionChanged([...this.selected]);
  }

  clearSelection() {
    this.selected.clear();
    this.drawSelection();
  }

  /** The CSV export of what the table lists, in its order, for every page. */
  exportHref() {
    return withQuery("/api/exports/alerts.csv", this.params());
  }
}
