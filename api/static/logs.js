// A notebook's logs (docs/api.md "A notebook's logs"): what its Sail and
// Marimo printed, as the platform last read it: as it stopped (a failed
// start's say why), or when asked while it runs. A worker reads them, so an
// ask is answered within seconds; the panel waits for it. Not a team
// viewer's: they can hold what the code printed.

import { api } from "./api.js";
import { $, announce, exactTime, h, isBusy, markBusy, setText, showError } from "./dom.js";
import { STOPPABLE } from "./store.js";

const POLL_MS = 1000;
const WAIT_MS = 30_000; // a worker answers in seconds; past this, say none did
const TEARDOWN_MS = 3000; // a failed start's teardown reads its logs within it
let logsOf = null; // the notebook whose logs are shown
let statusShown = null; // its status when they were last read
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

// Each poll of the notebook's page: a notebook that stopped or failed is
// read by its teardown, so the panel reads that (a failed start's status
// comes just before its teardown: read again a moment later); Read them now
// only while it runs.
export function logsSeeStatus(nb) {
  if (logsOf !== nb.id || statusShown === null || statusShown === nb.status) return;
  const ended = STOPPABLE.has(statusShown) && !STOPPABLE.has(nb.status);
  statusShown = nb.status;
  $("#logs-read").hidden = !STOPPABLE.has(nb.status);
  if (!ended) return;
  const mine = reading;
  load(nb, mine);
  setTimeout(() => mine === reading && load(nb, mine), TEARDOWN_MS);
}

// Out of sight when the page shows another notebook, or none.
export function hideLogs() {
  logsOf = null;
  statusShown = null;
  reading += 1; // a read or an ask on its way is dropped
  markBusy($("#logs-read"), false);
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
  markBusy($("#logs-read"), false);
  $("#logs-read").onclick = (ev) => readNow(nb, ev.currentTarget);
  showError($("#logs-error"), null);
  await load(nb, mine);
}

async function load(nb, mine) {
  try {
    const answer = await api.notebookLogs(nb.id);
    if (mine === reading) render(answer);
  } catch (err) {
    if (mine !== reading) return;
    if ($("#logs-when").textContent === "Loading…") $("#logs-when").textContent = "";
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
    if (mine !== reading) return; // hidden, or another notebook's shown, meanwhile
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
    if (mine === reading) markBusy(button, false); // else a newer show or ask owns it
  }
}

function render(answer) {
  statusShown = answer.status;
  const when = answer.capturedAt
    ? `Read ${exactTime(answer.capturedAt)}, from session ${answer.sessionId}.`
    : "None read yet: they are read as the notebook stops, and when you ask while it runs.";
  setText($("#logs-when"), answer.waiting ? `${when} Reading them again…` : when);
  $("#logs-read").hidden = !STOPPABLE.has(answer.status);
  output($("#logs-sail"), answer.sail, answer.capturedAt);
  output($("#logs-marimo"), answer.marimo, answer.capturedAt);
}

function output(pre, { text, problem }, read) {
  const none = read ? `Nothing read${problem ? `: ${problem}` : "."}` : "—";
  const shown = text || (text === "" ? "It printed nothing." : none);
  if (pre.textContent === shown) return; // the same read: where the reader scrolled stays
  pre.replaceChildren(text ? text : h("span", { class: "muted", text: shown }));
  pre.scrollTop = pre.scrollHeight; // the newest lines, where a failure says why
}
