// One alert in a dialog: its fields, a status change (PATCH), and its full audit trail.

import { describe, request } from "./api.js";
import { element, format } from "./panel.js";

const STATUSES = ["PENDING", "REVIEWING", "RESOLVED", "DISMISSED"];
const CLOSED = ["RESOLVED", "DISMISSED"];
const FIELDS = [
  ["alert_id", "Alert"], ["company_name", "Company"], ["violation_type", "Violation type"],
  ["severity", "Severity"], ["status", "Status"], ["amount", "Amount"], ["region", "Region"],
  ["detected_at", "Detected"], ["resolved_at", "Resolved"], ["assignee", "Assignee"],
  ["updated_at", "Updated"], ["version", "Version"],
];
const TIMES = new Set(["detected_at", "resolved_at", "updated_at", "created_at"]);

/** The moves the workflow allows: open alerts to any other status, closed ones back to review. */
export function allowedFrom(status) {
  return CLOSED.includes(status) ? ["REVIEWING"] : STATUSES.filter((s) => s !== status);
}

export class AlertDialog {
  constructor(dialog, { changed }) {
    this.dialog = dialog;
    this.changed = changed;
    this.status = dialog.querySelector(".panel-status");
    this.form = dialog.querySelector("#change-status");
    this.result = dialog.querySelector(".change-result");
    this.alert = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.change();
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  async open(alertId) {
    this.alert = null;
    this.result.textContent = "";
    this.dialog.querySelector("#detail-title").textContent = alertId;
    this.dialog.querySelector(".fields").replaceChildren();
    this.dialog.querySelector(".history").replaceChildren();
    if (!this.dialog.open) this.dialog.showModal();
    await this.load(alertId);
  }

  async load(alertId) {
    const id = encodeURIComponent(alertId);
    this.status.textContent = "Loading…";
    try {
      const [alert, history] = await Promise.all([
        request(`/api/alerts/${id}/`),
        request(`/api/alerts/${id}/history/`),
      ]);
      this.status.textContent = "";
      this.draw(alert.data, history.data);
    } catch (error) {
      this.status.textContent = describe(error, false);
    }
  }

  draw(alert, history) {
    this.alert = alert;
    this.dialog.querySelector("#detail-title").textContent = `${alert.company_name} · ${alert.alert_id}`;
    this.dialog.querySelector(".fields").replaceChildren(
      ...FIELDS.flatMap(([name, label]) => [
        element("dt", { text: label }),
        element("dd", { "data-field": name, text: shown(name, alert[name]) }),
      ]),
    );
    const select = this.form.elements.status;
    select.replaceChildren(...allowedFrom(alert.status).map((s) => element("option", { value: s, text: s })));
    this.dialog.querySelector(".history").replaceChildren(...history.map(historyEntry));
  }

  async change() {
    if (!this.alert) return;
    const body = { status: this.form.elements.status.value, version: this.alert.version };
    const note = this.form.elements.note.value.trim();
    if (note) body.note = note;
    this.result.className = "change-result";
    this.result.textContent = "Saving…";
    try {
      await request(`/api/alerts/${encodeURIComponent(this.alert.alert_id)}/`, { method: "PATCH", body });
      this.result.textContent = `Status changed to ${body.status}`;
      this.form.elements.note.value = "";
      await this.load(this.alert.alert_id);
      this.changed();
    } catch (error) {
      this.result.classList.add("error");
      const details = (error.errors ?? []).map((e) => `${e.field || e.parameter || "request"}: ${e.message}`);
      this.result.replaceChildren(
        element("strong", { text: describe(error, false) }),
        ...details.slice(1).map((text) => element("div", { text })),
      );
    }
  }
}

function shown(name, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (TIMES.has(name)) return format.time(value);
  if (name === "amount") return format.money(value);
  return String(value);
}

const OPERATIONS = { I: "created", U: "changed", D: "deleted" };

function historyEntry(entry) {
  const created = !entry.before;
  const changes = changedFields(entry.before, entry.after).map(([name, before, after]) =>
    element(
      "li",
      {},
      element("code", { text: name }),
      created ? ": " : " ",
      created ? null : element("span", { class: "before", text: shown(name, before) }),
      created ? null : " → ",
      element("span", { class: "after", text: shown(name, after) }),
    ),
  );
  return element(
    "li",
    { "data-op": entry.op },
    element(
      "p",
      { class: "who" },
      element("strong", { text: entry.actor }),
      ` via ${entry.source} · ${OPERATIONS[entry.op] || entry.op} · `,
      element("time", { datetime: entry.occurred_at, text: format.time(entry.occurred_at) }),
    ),
    entry.note ? element("p", { class: "note", text: entry.note }) : null,
    changes.length ? element("ul", { class: "changes" }, ...changes) : null,
  );
}

const SKIPPED = new Set(["id", "version", "updated_at", "created_at", "company_key"]);

function changedFields(before, after) {
  if (!before && after) {
    return Object.keys(after).filter((k) => !SKIPPED.has(k) && after[k] !== null)
      .map((k) => [k, null, after[k]]);
  }
  if (before && !after) return [["alert", "present", "deleted"]];
  return Object.keys(after || {})
    .filter((k) => !SKIPPED.has(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => [k, before[k], after[k]]);
}
