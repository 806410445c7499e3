// The Vega-Lite charts the service draws (/api/charts/NAME.json), embedded with vega-embed.
// The chart library is one large script, so it loads only after the cards and table are drawn.

import { filterParams, request, withQuery } from "./api.js";
import { Panel, element } from "./panel.js";

const BUNDLE = "/ui/vendor/vega.js";
let library = null;

/** vegaEmbed, once the bundle has loaded; a failed load is tried again at the next refresh. */
export function loadVega() {
  library ??= new Promise((resolve, reject) => {
    const script = element("script", { src: BUNDLE, async: true });
    script.onload = () =>
      window.vegaEmbed ? resolve(window.vegaEmbed) : reject(new Error(`${BUNDLE} has no vegaEmbed`));
    script.onerror = () => {
      library = null;
      script.remove();
      const error = new Error(`the chart library ${BUNDLE} could not be loaded`);
      error.status = 404;
      reject(error);
    };
    document.head.append(script);
  });
  return library;
}

/** The inline data arrays of a spec, wherever Vega-Lite allows them. */
function inlineData(spec) {
  const found = [];
  const visit = (node) => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node.data?.values)) found.push(node.data.values);
    for (const values of Object.values(node.datasets || {})) {
      if (Array.isArray(values)) found.push(values);
    }
    for (const key of ["layer", "concat", "hconcat", "vconcat"]) (node[key] || []).forEach(visit);
    if (node.spec) visit(node.spec);
  };
  visit(spec);
  return found;
}

const dark = matchMedia("(prefers-color-scheme: dark)");

/**
 * SVG (sharp, and its marks are DOM nodes); in a dark scheme Vega's dark theme, no white sheet.
 *
 * The page's Content Security Policy refuses inline style and eval, so vega-embed and its
 * tooltip inject no stylesheet (app.css styles both) and Vega interprets its expressions
 * (``ast``) instead of compiling them into functions.
 */
function embedOptions() {
  const options = {
    actions: false,
    renderer: "svg",
    ast: true,
    defaultStyle: false,
    tooltip: { disableDefaultStyle: true },
  };
  if (!dark.matches) return options;
  return { ...options, theme: "dark", patch: (vega) => ({ ...vega, background: "transparent" }) };
}

/** A datum's value as a filter value. Vega-Lite parses a temporal field (a day) into a Date. */
function plain(value) {
  if (value === undefined || value === null || value === "") return null;
  if (value instanceof Date || typeof value === "number") {
    return new Date(value).toISOString().slice(0, 10); // date-only days parse as UTC midnight
  }
  return String(value);
}

/**
 * A chart panel. ``pick(value)`` is called with the clicked mark's ``field`` value, so that a
 * click on a bar or a day becomes a filter.
 */
export function chartPanel(root, name, filters, { field, pick }) {
  const body = root.querySelector(".chart-body");
  let current = null;
  const panel = new Panel(root, {
    load: async (signal) => {
      const url = withQuery(`/api/charts/${name}.json`, filterParams(filters()));
      const [{ data: spec }, embed] = await Promise.all([request(url, { signal }), loadVega()]);
      return { spec, embed };
    },
    draw: async ({ spec, embed }) => {
      const data = inlineData(spec);
      const nothing = data.length && data.every((values) => values.length === 0);
      if (nothing || spec.usermeta?.msd?.empty) {
        current?.finalize();
        current = null;
        body.replaceChildren(element("p", { class: "empty", text: "No alerts for these filters" }));
        return;
      }
      // Drawn beside the old chart and swapped in when done: no blank frame while it renders.
      const frame = element("div", { class: "chart-frame incoming" });
      body.append(frame);
      const { view } = await embed(frame, spec, embedOptions());
      view.addEventListener("click", (_event, item) => {
        const value = plain(item?.datum?.[field]);
        if (value) pick(value);
      });
      for (const child of [...body.children]) if (child !== frame) child.remove();
      current?.finalize();
      current = view;
      frame.classList.remove("incoming");
    },
  });
  // The system may switch scheme while the page is open (at dusk, say): redraw in the new one.
  dark.addEventListener("change", () => panel.refresh());
  return panel;
}

/** Download links for a chart (PNG, SVG) or the alert list (CSV) under the current filters. */
export function exportLinks(nav, links) {
  nav.replaceChildren(
    ...links.map(({ label, href, file }) =>
      element("a", { href, download: file, text: label, class: "export" }),
    ),
  );
}

export function chartExports(name, params) {
  return ["png", "svg"].map((kind) => ({
    label: kind.toUpperCase(),
    href: withQuery(`/api/charts/${name}.${kind}`, params),
    file: `${name}.${kind}`,
  }));
}
