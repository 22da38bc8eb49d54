// A notebook's logs (docs/api.md "A notebook's logs"): what its Sail and
// Marimo printed, as the platform last read it: as it stopped (a failed
// start's say why), or when asked while it runs. A worker reads them, so an
// ask is answered within seconds; the panel waits for it. Not a team
// viewer's: they can hold what the code printed.

import { api } from "./api.js";
import { $, announce, exactTime, h, isBusy, markBusy, showError } from "./dom.js";
import { STOPPABLE } from "./store.js";

const POLL_MS = 1000;
const WAIT_MS = 30_000; // a worker answers in seconds; past this, say none did
let logsOf = null; // the notebook whose logs are shown
let reading = 0; // bumped by each show, hide and ask: older answers are dropped

// The "Logs" fact of a notebook's page (for who may manage it).
export function logsFact(nb) {
  const shown = logsOf === nb.id;
  return [h("button", {
    type: "button",
    class: "secondary",
    dataset: { focusKey: `${nb.id}:Logs` },
    "aria-expanded": shown ? "true" : "false",
    "aria-controls": "nb-logs",
    text: shown ? "Hide logs" : "Show logs",
    onclick: () => (logsOf === nb.id ? hideLogs() : showLogs(nb)),
  })];
}

// Out of sight when the page shows another notebook, or none.
export function hideLogs() {
  logsOf = null;
  reading += 1;
  $("#nb-logs").hidden = true;
  for (const sel of ["#logs-sail", "#logs-marimo"]) $(sel).replaceChildren();
  $("#logs-when").textContent = "";
  showError($("#logs-error"), null);
  expanded(false);
}

function expanded(shown) {
  for (const b of document.querySelectorAll("[data-focus-key$=':Logs']")) {
    b.setAttribute("aria-expanded", shown ? "true" : "false");
    b.textContent = shown ? "Hide logs" : "Show logs";
  }
}

async function showLogs(nb) {
  logsOf = nb.id;
  const mine = ++reading;
  expanded(true);
  $("#nb-logs").hidden = false;
  $("#logs-when").textContent = "Loading…";
  $("#logs-read").hidden = true;
  $("#logs-read").onclick = (ev) => readNow(nb, ev.currentTarget);
  showError($("#logs-error"), null);
  try {
    const answer = await api.notebookLogs(nb.id);
    if (mine === reading) render(answer);
  } catch (err) {
    if (mine !== reading) return;
    $("#logs-when").textContent = "";
    showError($("#logs-error"), err, "Could not read the logs");
  }
}

// A worker is asked to read them now; the panel shows its read when it is in.
async function readNow(nb, button) {
  if (isBusy(button)) return;
  const mine = ++reading;
  markBusy(button, true);
  showError($("#logs-error"), null);
  try {
    let answer = await api.readNotebookLogs(nb.id);
    render(answer);
    const until = Date.now() + WAIT_MS;
    while (answer.waiting && Date.now() < until) {
      await new Promise((done) => setTimeout(done, POLL_MS));
      if (mine !== reading) return;
      answer = await api.notebookLogs(nb.id);
      if (mine !== reading) return;
      render(answer);
    }
    if (answer.waiting) {
      showError($("#logs-error"), new Error("no worker has read them yet; shown is the last read"), "Could not read the logs now");
    } else {
      announce(`${nb.name}'s logs read`);
    }
  } catch (err) {
    if (mine === reading) showError($("#logs-error"), err, "Could not read the logs now");
  } finally {
    markBusy(button, false);
  }
}

function render(answer) {
  const when = answer.capturedAt
    ? `Read ${exactTime(answer.capturedAt)}, from session ${answer.sessionId}.`
    : "None read yet: they are read as the notebook stops, and when you ask while it runs.";
  $("#logs-when").textContent = answer.waiting ? `${when} Reading them again…` : when;
  $("#logs-read").hidden = !STOPPABLE.has(answer.status);
  output($("#logs-sail"), answer.sail, answer.capturedAt);
  output($("#logs-marimo"), answer.marimo, answer.capturedAt);
}

function output(pre, { text, problem }, read) {
  const none = read ? `Nothing read${problem ? `: ${problem}` : "."}` : "—";
  pre.replaceChildren(text ? text : h("span", { class: "muted", text: text === "" ? "It printed nothing." : none }));
  pre.scrollTop = pre.scrollHeight; // the newest lines, where a failure says why
}
