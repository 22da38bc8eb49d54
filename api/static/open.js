// An open notebook: Marimo in an iframe loaded from the single-use `open`
// URL, with a presence ping every 60 s while the iframe is shown and the tab
// is visible (the API's presence window is longer, so one missed tick is fine).

import { confirmStop, loadNotebook } from "./actions.js";
import { api, notFound } from "./api.js";
import { $, announce, isBusy, keepError, markBusy, setText, showError, statusBadge } from "./dom.js";
import { notebookGone } from "./notebooks.js";
import { PROVISIONED, Poller, STARTABLE, STOPPABLE, TRANSITIONAL, accessTo, canManage } from "./store.js";

export const PING_INTERVAL_MS = 60_000;

// `entry` counts visits to the view, so that an `await` that returns after
// the member left (or came to another notebook, or left and came back) does
// nothing. `framed`: an editor is in the frame, of the notebook's session
// `session`, in `mode`; `loads` counts the editors put there (an answer
// about the one before is dropped). `loading`: this visit's `open` call is
// on its way (one from an earlier visit does not count: its answer is dropped).
const open = {
  id: null, entry: 0, timer: null, lastPing: 0, poller: null, nb: null,
  framed: false, session: null, mode: null, loads: 0, loading: false, stoppingSince: null,
};

function frame() {
  return $("#open-frame");
}

// A fresh iframe per load and per unload: setting `src` on the one in the
// page would add an entry to the tab's history (Back would then move the
// hidden frame instead of the console). Unloading the editor closes its
// WebSocket to the proxy.
function showFrame(url, title) {
  const fresh = frame().cloneNode(false);
  fresh.src = url;
  fresh.title = title;
  fresh.hidden = false;
  frame().replaceWith(fresh);
}

function closeFrame() {
  clearInterval(open.timer);
  open.timer = null;
  open.framed = false;
  $("#open-mode").hidden = true;
  setNote("", null);
  const blank = frame().cloneNode(false);
  blank.removeAttribute("src");
  blank.hidden = true;
  frame().replaceWith(blank);
}

// Only the proxy's http(s) URL may be put in the frame, never a `javascript:` one.
// A web address on another origin than the console's: a frame of the
// console's own origin would be unsandboxed (allow-scripts with
// allow-same-origin), its scripts free to read the console's token.
function frameable(url) {
  try {
    const parsed = new URL(url);
    return ["http:", "https:"].includes(parsed.protocol) && parsed.origin !== location.origin;
  } catch {
    return false;
  }
}

function shown() {
  return !frame().hidden && document.visibilityState === "visible";
}

// The notebook answered 404 (deleted elsewhere, or no longer shared with
// this member): drop the frame, stop following it, back to the list.
function gone() {
  open.poller?.stop();
  closeFrame();
  $("#open-stop").disabled = true;
  notebookGone(open.nb?.name);
}

async function ping() {
  const entry = open.entry;
  open.lastPing = Date.now();
  try {
    await api.pingNotebook(open.id);
    if (entry !== open.entry) return; // left meanwhile
    if ($("#open-error").dataset.source === "ping") showError($("#open-error"), null);
    // A ping turns an idle notebook back to running: show it now.
    open.poller?.now();
  } catch (err) {
    if (entry !== open.entry) return;
    if (notFound(err)) return gone();
    showError($("#open-error"), err, "Could not record that this notebook is open");
    $("#open-error").dataset.source = "ping";
  }
}

// Why the member only watches (DESIGN §5: a team viewer always; anyone
// else but the owner while the owner is active), and, when asked, a switch.
function setNote(text, action) {
  setText($("#open-note-text"), text);
  $("#open-note").hidden = !text;
  const button = $("#open-switch");
  button.hidden = !action;
  if (action) button.textContent = action;
}

function watchReason(mode) {
  if (mode !== "view") return "";
  return accessTo(open.nb || {}) === "viewer"
    ? "You are a viewer of this notebook: you can watch it, not run or edit it."
    : "The owner is working in this notebook: you can watch. You can edit once they have left.";
}

// For a member whose mode follows the owner's presence: would `open` give
// another mode now? The owner left (edit is offered), or came back (the
// proxy has ended this member's editing: say so). The member switches: a
// reload under them would lose what they were looking at.
async function checkMode() {
  const access = accessTo(open.nb || {});
  if (!open.framed || !access || access === "owner" || access === "viewer") return;
  const { entry, loads } = open;
  let answer;
  try {
    answer = await api.openNotebook(open.id);
  } catch {
    return; // stopped or gone: the status poll says so
  }
  if (entry !== open.entry || loads !== open.loads || !open.framed) return; // another editor since
  if (answer.mode === open.mode) return setNote(watchReason(open.mode), null);
  if (answer.mode === "edit") setNote("The owner has left: you can edit now.", "Switch to editing");
  else setNote("The owner is back: editing here has ended. You can watch.", "Reopen read-only");
}

function onVisibility() {
  // Coming back to the tab after a minute or more: say so at once.
  if (!PROVISIONED.has(open.nb?.status)) return; // stopping: a ping would be refused
  if (shown() && Date.now() - open.lastPing >= PING_INTERVAL_MS) ping();
}

// How long the frame stays through `stopping` (the proxy's save window is
// 2.5 s; a worker that acts on the stop ends it sooner).
const SAVING_MS = 10_000;

async function refreshStatus() {
  const entry = open.entry;
  try {
    const nb = await loadNotebook(open.id);
    if (entry !== open.entry) return false; // left the view meanwhile
    open.nb = nb;
    $("#open-title").textContent = nb.name;
    document.title = `${nb.name} · Notebooks`;
    $("#open-status").replaceChildren(statusBadge(nb.status));
    const serving = PROVISIONED.has(nb.status);
    // Stopping: the editor stays while it saves what was typed last (Marimo
    // saves 1 s after the last keystroke, only while it is connected; the
    // proxy and the worker leave it a moment: docs/proxy.md).
    // Not for ever: the proxy ends the editor's connection seconds after the
    // stop even when no worker acts on it, and the frame would sit there.
    if (nb.status !== "stopping") open.stoppingSince = null;
    else open.stoppingSince ??= Date.now();
    const saving =
      nb.status === "stopping" && nb.sessionId === open.session && Date.now() - open.stoppingSince < SAVING_MS;
    // Stopped, failed or restarted under the member: the editor in the frame
    // is gone. Say so, stop pinging, and open it again once it runs.
    if (open.framed && !saving && (!serving || nb.sessionId !== open.session)) closeFrame();
    // A live region: rewritten only when its words change (each poll would
    // otherwise be announced again).
    const message = saving && open.framed
      ? "Stopping: the editor saves what was typed last, then closes."
      : `${sentence(nb.statusMessage || `The notebook is ${nb.status}`)} It opens here when it runs.`;
    setText($("#open-message"), serving ? "" : message);
    // A team viewer may neither start nor stop it; stopped (here or
    // elsewhere), it is started again from here.
    const startable = canManage(nb) && STARTABLE.has(nb.status);
    $("#open-start").hidden = !startable;
    const stop = $("#open-stop");
    stop.hidden = !canManage(nb) || startable;
    // A Stop that has done its part (the page stays while it stops) gives its
    // focus to the title rather than to nowhere.
    if (!STOPPABLE.has(nb.status) && document.activeElement === stop) {
      $("#open-title").setAttribute("tabindex", "-1");
      $("#open-title").focus();
    }
    stop.disabled = !STOPPABLE.has(nb.status);
    if (serving && !open.framed && !open.loading) load();
    return TRANSITIONAL.has(nb.status);
  } catch (err) {
    if (entry !== open.entry) return false; // left meanwhile
    if (notFound(err)) {
      gone();
      return false;
    }
    keepError($("#open-error"), err, "Could not load the notebook");
    if (err.retryAfterMs) open.poller?.backoff(err.retryAfterMs);
    return false;
  }
}

// Status messages are phrases ("idle for 1 h"); the page's text is sentences.
function sentence(text) {
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

async function load() {
  const error = $("#open-error");
  const entry = open.entry;
  let session;
  open.loads += 1;
  open.loading = true;
  try {
    session = await api.openNotebook(open.id);
  } catch (err) {
    if (entry !== open.entry) return; // left the view while waiting
    if (notFound(err)) return gone();
    showError(error, err, "Could not open the notebook");
    return;
  } finally {
    if (entry === open.entry) open.loading = false; // a later visit's own call may be on its way
  }
  if (entry !== open.entry) return; // left the view while waiting
  if (!frameable(session.url)) {
    showError(error, new Error("The notebook's address is not a web address of the proxy's."), "Could not open");
    return;
  }
  showError(error, null);
  open.framed = true;
  open.session = open.nb?.sessionId ?? null;
  open.mode = session.mode;
  showFrame(session.url, `Notebook ${open.nb?.name || open.id} (Marimo editor)`);
  const badge = $("#open-mode");
  badge.hidden = false;
  badge.dataset.mode = session.mode;
  const reason = watchReason(session.mode);
  badge.textContent = session.mode === "view" ? "Read-only" : "Editing";
  badge.title = reason;
  setNote(reason, null);
  if (reason) announce(`Opened read-only. ${reason}`);
  await ping();
  if (entry !== open.entry || !open.framed) return; // left, or closed meanwhile
  clearInterval(open.timer);
  open.timer = setInterval(() => {
    if (!shown() || !PROVISIONED.has(open.nb?.status)) return; // a ping now would be refused
    ping();
    checkMode();
  }, PING_INTERVAL_MS);
}

export const openView = {
  el: () => $("#view-open"),
  enter({ id }) {
    open.entry += 1;
    open.id = id;
    open.nb = null;
    open.framed = false;
    open.loading = false; // an earlier visit's `open` call is not this one's
    open.lastPing = 0;
    open.stoppingSince = null;
    showError($("#open-error"), null);
    $("#open-title").textContent = "Notebook";
    $("#open-status").replaceChildren();
    $("#open-message").textContent = "";
    $("#open-stop").hidden = true;
    $("#open-start").hidden = true;
    $("#open-back").href = `#/notebooks/${id}`;
    $("#open-mode").hidden = true;
    const stop = $("#open-stop");
    markBusy(stop, false); // not still busy from a stop asked on an earlier visit
    const entry = open.entry;
    const stopNow = async () => {
      if (isBusy(stop)) return; // marked, not disabled: it keeps focus if refused
      markBusy(stop, true);
      try {
        await api.stopNotebook(id);
        announce("Stopping the notebook");
        // Stays here: leaving would unload the editor before it saved what was
        // typed last; the status poll closes it once the notebook has stopped.
        if (entry === open.entry) await open.poller.now();
      } catch (err) {
        if (entry === open.entry) showError($("#open-error"), err, "Could not stop");
      } finally {
        if (entry === open.entry) markBusy(stop, false);
      }
    };
    stop.onclick = () => {
      if (isBusy(stop) || !open.nb) return;
      confirmStop(open.nb, stop, stopNow);
    };
    $("#open-switch").onclick = () => {
      closeFrame();
      load(); // a fresh `open`, in the mode that applies now
    };
    const start = $("#open-start");
    markBusy(start, false);
    start.onclick = async () => {
      if (isBusy(start)) return;
      markBusy(start, true);
      showError($("#open-error"), null);
      try {
        await api.startNotebook(id);
        announce("Starting the notebook");
        if (entry === open.entry) await open.poller.now(); // shows it starting, then opens it
      } catch (err) {
        if (entry === open.entry) showError($("#open-error"), err, "Could not start");
      } finally {
        if (entry === open.entry) markBusy(start, false);
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    // The first status read opens the notebook if it runs; later ones
    // follow it (closing the frame when it stops, opening it again after).
    open.poller = new Poller(refreshStatus);
    open.poller.start();
  },
  leave() {
    open.entry += 1;
    open.id = null;
    open.poller?.stop();
    document.removeEventListener("visibilitychange", onVisibility);
    closeFrame();
  },
};
