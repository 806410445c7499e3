// One dashboard panel: loads its data, keeps the old content until the new one is drawn, and
// shows failures inside itself (retrying by itself when the service is only briefly unavailable).

import { describe } from "./api.js";

const RETRY_MS = 5000;

export class Panel {
  /** ``load(signal)`` fetches; ``draw(result)`` puts it on the page. */
  constructor(root, { load, draw }) {
    this.root = root;
    this.status = root.querySelector(".panel-status");
    this.load = load;
    this.draw = draw;
    this.controller = null;
    this.retryTimer = null;
    this.loaded = 0;
  }

  async refresh() {
    clearTimeout(this.retryTimer);
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    this.root.setAttribute("aria-busy", "true");
    try {
      const result = await this.load(controller.signal);
      if (controller.signal.aborted) return;
      await this.draw(result);
      this.fail(null);
      this.loaded += 1;
      this.root.dataset.loaded = String(this.loaded);
    } catch (error) {
      if (controller.signal.aborted || error.name === "AbortError") return;
      const retrying = !error.status || error.status === 503;
      this.fail(describe(error, retrying));
      if (retrying) this.retryTimer = setTimeout(() => this.refresh(), RETRY_MS);
    } finally {
      if (this.controller === controller) this.root.removeAttribute("aria-busy");
    }
  }

  /** Show ``message`` as the panel's error, or clear the error when it is null. */
  fail(message) {
    this.root.classList.toggle("failed", message !== null);
    this.status.textContent = message ?? "";
  }
}

function setStyle(node, properties) {
  for (const [property, value] of Object.entries(properties)) {
    node.style.setProperty(property, value);
  }
}

/** A new element; ``style`` takes an object of CSS properties (custom ones too). */
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    // Through the CSSOM: the page's policy refuses style attributes, not style properties.
    else if (name === "style") setStyle(node, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const whole = new Intl.NumberFormat("en-US");
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const compactMoney = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1,
});

export const format = {
  count: (n) => whole.format(n),
  money: (n) => (n === null || n === undefined ? "—" : money.format(Number(n))),
  compactMoney: (n) => compactMoney.format(Number(n)),
  time: (iso) => (iso ? new Date(iso).toLocaleString() : "—"),
  shortTime: (iso) =>
    new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }),
};
