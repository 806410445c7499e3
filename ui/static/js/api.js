// Talking to the service: query strings from the filters, JSON reads, problem+json errors.

const PRESET_DAYS = { "7d": 7, "30d": 30, "90d": 90, "1y": 365 };

export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** The window and filter parameters every endpoint takes, from the dashboard's filters. */
export function filterParams(filters) {
  const params = new URLSearchParams();
  addWindow(params, filters);
  for (const name of ["severity", "status", "region"]) {
    if (filters[name].length) params.set(name, filters[name].join(","));
  }
  // Company and violation names may hold commas, so they are repeated, never joined.
  for (const name of ["company", "violation_type"]) {
    for (const value of filters[name]) params.append(name, value);
  }
  if (filters.q) params.set("q", filters.q);
  params.set("tz", zone);
  return params;
}

function addWindow(params, filters) {
  if (filters.range === "custom") {
    if (filters.since) params.set("since", filters.since);
    if (filters.until) params.set("until", filters.until);
    return;
  }
  if (filters.range === "24h") {
    // Rounded to the minute so that panels loaded together ask the same question (one cache key).
    const start = new Date(Date.now() - 24 * 3600 * 1000);
    start.setSeconds(0, 0);
    params.set("since", start.toISOString());
    return;
  }
  params.set("days", String(PRESET_DAYS[filters.range] ?? 30));
}

/** An error answer, with the problem+json fields when the server sent them. */
export class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

async function problemOf(response) {
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  try {
    return new ApiProblem(response.status, await response.json(), retryAfter);
  } catch {
    return new ApiProblem(response.status, { title: response.statusText }, retryAfter);
  }
}

function cookie(name) {
  const found = document.cookie.split("; ").find((pair) => pair.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

/** Without a session (none yet, or it ended), the sign-in page, which comes back here after. */
export function signIn() {
  const here = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(here)}`);
}

/** GET (or another method with a JSON body) and decode; throws ApiProblem on an error answer. */
export async function request(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  if (method !== "GET") {
    // The session's changes must echo its CSRF cookie, which only this page's script can read.
    init.headers["X-CSRF-Token"] = cookie("msd_csrf");
  }
  const response = await fetch(path, init);
  if (response.status === 401) signIn();
  if (!response.ok) throw await problemOf(response);
  return { data: await response.json(), headers: response.headers };
}

export function withQuery(path, params) {
  const query = params.toString();
  return query ? `${path}?${query}` : path;
}

/** A sentence for a failed panel: what failed and whether it retries by itself. */
export function describe(error, retrying) {
  if (error.status === 404) return `Not available on this server: ${error.message}`;
  if (error.status === 503) {
    return `Figures unavailable: ${error.message}${retrying ? " — retrying" : ""}`;
  }
  if (error.status) return `${error.title}: ${error.message}`;
  return `Cannot reach the service: ${error.message}${retrying ? " — retrying" : ""}`;
}
