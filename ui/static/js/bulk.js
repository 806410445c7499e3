// The bulk action on selected alerts: POST /api/alerts/batch_process/, then follow the task.

import { describe, request } from "./api.js";
import { format } from "./panel.js";

const POLL_MS = 400;

export function bulkForm(form, { selected, done }) {
  const progress = form.querySelector(".bulk-progress");
  const action = form.elements.action;
  const assignee = form.querySelector(".assignee");
  action.addEventListener("change", () => { assignee.hidden = action.value !== "assign"; });
  form.querySelector("#bulk-clear").addEventListener("click", () => done({ cleared: true }));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { alert_ids: selected(), action: action.value };
    const assigned = form.elements.assignee.value.trim();
    if (action.value === "assign" && assigned) body.assignee = assigned;
    if (form.elements.note.value.trim()) body.note = form.elements.note.value.trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    form.dataset.state = "running";
    progress.textContent = `Sending ${format.count(body.alert_ids.length)} alerts…`;
    try {
      const { data } = await request("/api/alerts/batch_process/", { method: "POST", body });
      const task = await follow(data.task_id, progress);
      form.dataset.state = task.state;
      progress.textContent = outcome(task);
      if (task.state === "done") form.elements.note.value = "";
      done({ task });
    } catch (error) {
      form.dataset.state = "failed";
      const fields = error.errors?.map((e) => e.message).filter(Boolean) ?? [];
      progress.textContent = `Batch not accepted: ${[describe(error, false), ...fields.slice(1)].join("; ")}`;
    } finally {
      button.disabled = false;
    }
  });

  return {
    show(ids) {
      form.hidden = ids.length === 0 && form.dataset.state !== "done" && form.dataset.state !== "failed";
      form.querySelector("#bulk-count").textContent = `${format.count(ids.length)} selected`;
      button(form).disabled = ids.length === 0;
    },
  };
}

function button(form) {
  return form.querySelector("button[type=submit]");
}

async function follow(taskId, progress) {
  for (;;) {
    const { data: task } = await request(`/api/tasks/${encodeURIComponent(taskId)}/`);
    if (task.state === "done" || task.state === "failed") return task;
    const { processed, total, percent } = task.progress;
    progress.textContent = `${task.state}: ${format.count(processed)} of ${format.count(total)} (${percent}%)`;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function outcome(task) {
  if (task.state === "failed") return `Batch failed: ${task.error || "no reason given"}`;
  const parts = Object.entries(task.counts)
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${format.count(n)} ${name.replaceAll("_", " ")}`);
  return `Batch done: ${parts.join(", ") || "nothing to change"}`;
}
