// The account pages (/password-reset, /verify-email): posts the form where it stands and says
// what the server answered, in the page. Without this script the form still posts, and the
// server answers a browser's form post with a page of its own.
"use strict";

for (const form of document.querySelectorAll("form[data-account-form]")) {
  const result = document.getElementById("result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    result.textContent = "";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      if (response.ok) {
        result.textContent = form.dataset.done;
        form.hidden = true;
        return;
      }
      result.textContent = await describe(response);
    } catch {
      result.textContent = "The server could not be reached. Try again.";
    }
    button.disabled = false;
  });
}

async function describe(response) {
  if (response.status === 403) {
    return "This page has expired. Reload it and try again.";
  }
  if (response.status === 429) {
    return "Too many attempts. Wait a little and try again.";
  }
  try {
    const body = await response.json();
    if (typeof body.detail === "string") {
      return body.detail;
    }
    if (Array.isArray(body.detail) && body.detail.length > 0) {
      return body.detail.map((error) => error.msg).join(" ");
    }
  } catch {
    // Not JSON: fall through.
  }
  return `The server answered ${response.status}.`;
}
