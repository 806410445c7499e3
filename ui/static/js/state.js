// The dashboard's state lives in the address bar: filters and table view, shareable as a link.

export const RANGES = ["24h", "7d", "30d", "90d", "1y"];
export const DEFAULT_RANGE = "30d";
export const DEFAULT_ORDERING = "-detected_at";
export const PAGE_SIZES = [20, 50, 100, 200];
export const DEFAULT_PAGE_SIZE = 20;

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function split(params, name) {
  return params.getAll(name).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function repeated(params, name) {
  return params.getAll(name).map((v) => v.trim()).filter(Boolean);
}

/** The state a query string describes; anything malformed falls back to its default. */
export function parseState(search) {
  const params = new URLSearchParams(search);
  const since = DATE.test(params.get("since") || "") ? params.get("since") : "";
  const until = DATE.test(params.get("until") || "") ? params.get("until") : "";
  const range = since || until ? "custom" : (RANGES.includes(params.get("range"))
    ? params.get("range") : DEFAULT_RANGE);
  const pageSize = Number(params.get("page_size"));
  return {
    filters: {
      range,
      since,
      until,
      severity: split(params, "severity").map((v) => v.toUpperCase()),
      status: split(params, "status").map((v) => v.toUpperCase()),
      region: split(params, "region").map((v) => v.toUpperCase()),
      company: repeated(params, "company"),
      violation_type: repeated(params, "violation_type"),
      q: (params.get("q") || "").trim(),
    },
    ordering: params.get("ordering") || DEFAULT_ORDERING,
    pageSize: PAGE_SIZES.includes(pageSize) ? pageSize : DEFAULT_PAGE_SIZE,
  };
}

/** The query string of a state, defaults left out so that links stay short. */
export function formatState(state) {
  const { filters } = state;
  const params = new URLSearchParams();
  if (filters.range === "custom") {
    if (filters.since) params.set("since", filters.since);
    if (filters.until) params.set("until", filters.until);
  } else if (filters.range !== DEFAULT_RANGE) {
    params.set("range", filters.range);
  }
  for (const name of ["severity", "status", "region"]) {
    if (filters[name].length) params.set(name, filters[name].join(","));
  }
  for (const name of ["company", "violation_type"]) {
    for (const value of filters[name]) params.append(name, value);
  }
  if (filters.q) params.set("q", filters.q);
  if (state.ordering !== DEFAULT_ORDERING) params.set("ordering", state.ordering);
  if (state.pageSize !== DEFAULT_PAGE_SIZE) params.set("page_size", String(state.pageSize));
  const query = params.toString();
  return query ? `?${query}` : location.pathname;
}

/** Watches the address bar; ``commit`` records a new state as a history entry. */
export class Store {
  constructor(onChange) {
    this.state = parseState(location.search);
    this.onChange = onChange;
    addEventListener("popstate", () => {
      this.state = parseState(location.search);
      this.onChange(this.state, { fromHistory: true });
    });
  }

  commit(change) {
    const next = structuredClone(this.state);
    change(next);
    const url = formatState(next);
    if (url === formatState(this.state)) return;
    this.state = parseState(new URL(url, location.href).search);
    history.pushState(null, "", url);
    this.onChange(this.state, { fromHistory: false });
  }
}
