// Sends the form as JSON; on success goes back to the page that sent the user here.
const form = document.getElementById("signin");
const problem = document.getElementById("problem");

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this site: never an address elsewhere.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  const body = {
    username: form.username.value.trim(),
    password: form.password.value,
  };
  if (!body.username || !body.password) {
    problem.textContent = "Enter your username and password.";
    return;
  }
  try {
    const response = await fetch("/api/session/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (response.ok) {
      location.assign(nextPage());
      return;
    }
    const detail = await response.json().catch(() => ({}));
    problem.textContent = detail.detail || `Sign-in failed (${response.status}).`;
  } catch (error) {
    problem.textContent = "The service did not answer; check that it is running and try again.";
  }
});
