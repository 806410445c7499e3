// The filter bar: every control writes into the address bar's state, and is redrawn from it.

import { element } from "./panel.js";

const TYPING_PAUSE_MS = 400;
const LISTS = { company: "Company", violation_type: "Violation type" };

export function filterBar(form, { commit }) {
  const field = (name) => form.elements[name];
  let typing = null;

  form.addEventListener("submit", (event) => event.preventDefault());
  for (const button of form.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () =>
      commit((s) => Object.assign(s.filters, { range: button.dataset.range, since: "", until: "" })),
    );
  }
  for (const name of ["since", "until"]) {
    field(name).addEventListener("change", () =>
      commit((s) => {
        s.filters.range = "custom";
        s.filters.since = field("since").value;
        s.filters.until = field("until").value;
      }),
    );
  }
  for (const name of ["severity", "status"]) {
    for (const box of form.querySelectorAll(`input[name=${name}]`)) {
      box.addEventListener("change", () =>
        commit((s) => {
          s.filters[name] = [...form.querySelectorAll(`input[name=${name}]:checked`)].map((b) => b.value);
        }),
      );
    }
  }
  field("region").addEventListener("change", () =>
    commit((s) => {
      s.filters.region = field("region").value.split(",").map((v) => v.trim().toUpperCase()).filter(Boolean);
    }),
  );
  for (const name of Object.keys(LISTS)) {
    field(name).addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const value = field(name).value.trim();
      field(name).value = "";
      if (value) commit((s) => { if (!s.filters[name].includes(value)) s.filters[name].push(value); });
    });
  }
  const applyText = () => {
    clearTimeout(typing);
    commit((s) => { s.filters.q = field("q").value.trim(); });
  };
  field("q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(applyText, TYPING_PAUSE_MS);
  });
  field("q").addEventListener("change", applyText);
  form.querySelector("#clear-filters").addEventListener("click", () =>
    commit((s) => {
      Object.assign(s.filters, {
        range: "30d", since: "", until: "", severity: [], status: [], region: [],
        company: [], violation_type: [], q: "",
      });
    }),
  );

  return {
    /** Redraw every control from ``filters`` (after a change, back/forward or a reload). */
    show(filters) {
      for (const button of form.querySelectorAll("[data-range]")) {
        button.setAttribute("aria-pressed", String(button.dataset.range === filters.range));
      }
      field("since").value = filters.since;
      field("until").value = filters.until;
      for (const name of ["severity", "status"]) {
        for (const box of form.querySelectorAll(`input[name=${name}]`)) {
          box.checked = filters[name].includes(box.value);
        }
      }
      if (document.activeElement !== field("region")) field("region").value = filters.region.join(", ");
      if (document.activeElement !== field("q")) field("q").value = filters.q;
      form.querySelector("#chips").replaceChildren(
        ...Object.entries(LISTS).flatMap(([name, label]) =>
          filters[name].map((value) =>
            element(
              "li",
              {},
              element("button", {
                type: "button",
                class: "chip",
                "aria-label": `Remove ${label.toLowerCase()} filter ${value}`,
                text: `${label}: ${value} ✕`,
                onclick: () => commit((s) => { s.filters[name] = s.filters[name].filter((v) => v !== value); }),
              }),
            ),
          ),
        ),
      );
    },
  };
}
