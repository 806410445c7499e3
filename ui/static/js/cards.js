// The statistic cards: totals of the filtered window from /api/alerts/statistics/.

import { filterParams, request, withQuery } from "./api.js";
import { Panel, format } from "./panel.js";

export function cardsPanel(root, filters) {
  const value = (name) => root.querySelector(`[data-stat="${name}"]`);
  return new Panel(root, {
    load: (signal) =>
      request(withQuery("/api/alerts/statistics/", filterParams(filters())), { signal }),
    draw: ({ data }) => {
      value("total").textContent = format.count(data.total);
      value("critical").textContent = format.count(data.critical);
      value("high").textContent = format.count(data.high);
      value("pending").textContent = format.count(data.pending);
      value("total_amount").textContent = format.compactMoney(data.total_amount);
      value("total_amount").title = format.money(data.total_amount);
    },
  });
}

/** The freshness card and header line, from a live ``watermark`` event. */
export function showFreshness(root, header, event) {
  const card = root.querySelector('[data-stat="as_of"]');
  const when = event.as_of ? format.time(event.as_of) : "no change replicated yet";
  card.textContent = when;
  card.title = `replication watermark ${event.watermark}, ${event.applied_events} changes`;
  header.textContent = `Live · figures as of ${when}`;
}
