// An open notebook: Marimo in an iframe loaded from the single-use `open`
// URL, with a presence ping every 60 s while the iframe is shown and the tab
// is visible (the API's presence window is longer, so one missed tick is fine).

import { loadNotebook } from "./actions.js";
import { api } from "./api.js";
import { $, announce, setBusy, showError, statusBadge } from "./dom.js";
import { PROVISIONED, Poller } from "./store.js";

export const PING_INTERVAL_MS = 60_000;

const open = { id: null, timer: null, lastPing: 0, poller: null, nb: null };

function frame() {
  return $("#open-frame");
}

function shown() {
  return !frame().hidden && document.visibilityState === "visible";
}

async function ping() {
  open.lastPing = Date.now();
  try {
    await api.pingNotebook(open.id);
    if ($("#open-error").dataset.source === "ping") showError($("#open-error"), null);
    // A ping turns an idle notebook back to running: show it now.
    open.poller?.now();
  } catch (err) {
    showError($("#open-error"), err, "Could not record that this notebook is open");
    $("#open-error").dataset.source = "ping";
  }
}

function onVisibility() {
  // Coming back to the tab after a minute or more: say so at once.
  if (shown() && Date.now() - open.lastPing >= PING_INTERVAL_MS) ping();
}

async function refreshStatus() {
  try {
    const nb = await loadNotebook(open.id);
    open.nb = nb;
    $("#open-title").textContent = nb.name;
    document.title = `${nb.name} · Notebooks`;
    $("#open-status").replaceChildren(statusBadge(nb.status));
    $("#open-message").textContent = PROVISIONED.has(nb.status) ? "" : nb.statusMessage || "";
    return !PROVISIONED.has(nb.status);
  } catch (err) {
    showError($("#open-error"), err, "Could not load the notebook");
    return false;
  }
}

async function load() {
  const error = $("#open-error");
  let session;
  try {
    session = await api.openNotebook(open.id);
  } catch (err) {
    showError(error, err, "Could not open the notebook");
    return;
  }
  if (open.id === null) return; // Left the view while waiting.
  const iframe = frame();
  iframe.src = session.url;
  iframe.title = `Notebook ${open.nb?.name || open.id} (Marimo editor)`;
  iframe.hidden = false;
  const badge = $("#open-mode");
  badge.hidden = false;
  badge.dataset.mode = session.mode;
  if (session.mode === "view") {
    badge.textContent = "Read-only";
    badge.title = "The owner is working in this notebook: you can watch but not run or edit.";
    announce("Opened read-only: the owner is working in this notebook");
  } else {
    badge.textContent = "Editing";
    badge.title = "";
  }
  await ping();
  open.timer = setInterval(() => {
    if (shown()) ping();
  }, PING_INTERVAL_MS);
}

export const openView = {
  el: () => $("#view-open"),
  enter({ id }) {
    open.id = id;
    open.nb = null;
    open.lastPing = 0;
    showError($("#open-error"), null);
    $("#open-title").textContent = "Notebook";
    $("#open-back").href = `#/notebooks/${id}`;
    $("#open-mode").hidden = true;
    const stop = $("#open-stop");
    stop.onclick = async () => {
      setBusy(stop, true);
      try {
        await api.stopNotebook(id);
        announce("Stopping the notebook");
        location.hash = `#/notebooks/${id}`;
      } catch (err) {
        showError($("#open-error"), err, "Could not stop");
      } finally {
        setBusy(stop, false);
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    open.poller = new Poller(refreshStatus);
    open.poller.start();
    refreshStatus().then(load);
  },
  leave() {
    open.id = null;
    clearInterval(open.timer);
    open.poller?.stop();
    document.removeEventListener("visibilitychange", onVisibility);
    const iframe = frame();
    iframe.hidden = true;
    // Unloading the editor closes its WebSocket to the proxy.
    iframe.src = "about:blank";
  },
};
