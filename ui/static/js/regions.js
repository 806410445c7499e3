// Alerts by region from /api/alerts/regions/: a table whose region names filter the dashboard.

import { filterParams, request, withQuery } from "./api.js";
import { Panel, element, format } from "./panel.js";

export function regionsPanel(root, filters, pick) {
  const body = root.querySelector(".regions-body");
  return new Panel(root, {
    load: (signal) =>
      request(withQuery("/api/alerts/regions/", filterParams(filters())), { signal }),
    draw: ({ data }) => {
      const rows = [...data].sort((a, b) => b.alerts - a.alerts);
      if (!rows.length) {
        body.replaceChildren(element("p", { class: "empty", text: "No alerts for these filters" }));
        return;
      }
      const most = Math.max(...rows.map((row) => row.alerts), 1);
      body.replaceChildren(
        element(
          "table",
          { class: "regions" },
          element(
            "thead",
            {},
            element(
              "tr",
              {},
              ...["Region", "Alerts", "Critical", "High", "Pending", "Amount"].map((label, i) =>
                element("th", { class: i ? "number" : undefined, scope: "col", text: label }),
              ),
            ),
          ),
          element("tbody", {}, ...rows.map((row) => regionRow(row, most, pick))),
        ),
      );
    },
  });
}

function regionRow(row, most, pick) {
  const name = row.region
    ? element("button", {
        type: "button",
        class: "link",
        text: row.region,
        title: `Show only ${row.region}`,
        onclick: () => pick(row.region),
      })
    : element("span", { class: "muted", text: "(none)" });
  const share = (row.alerts / most).toFixed(3);
  const bar = element("span", { class: "bar", style: { "--share": share } });
  return element(
    "tr",
    {},
    element("th", { scope: "row" }, name),
    element("td", { class: "number" }, bar, format.count(row.alerts)),
    element("td", { class: "number", text: format.count(row.critical) }),
    element("td", { class: "number", text: format.count(row.high) }),
    element("td", { class: "number", text: format.count(row.pending) }),
    element("td", { class: "number", text: format.compactMoney(row.amount) }),
  );
}
