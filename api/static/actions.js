// Start, stop, edit, delete: the per-notebook actions shared by the list
// and the detail view, and the dialogs behind them.

import { api } from "./api.js";
import { caps, capsHint, newTimeout, refreshCaps } from "./caps.js";
import { $, announce, focusHeading, h, markBusy, setBusy, showError } from "./dom.js";
import { nameOf, sourceOf, tooLarge, tooLargeError } from "./sources.js";
import {
  PROVISIONED,
  STARTABLE,
  STOPPABLE,
  absorb,
  accessTo,
  canAdminister,
  canManage,
  configName,
  state,
} from "./store.js";

// Turn a describe/list entry into the notebook plus its team ids.
export function joinItem(item, included) {
  const nb = (included.notebooks || []).find((n) => n.id === item.notebookId);
  return nb ? { ...nb, teamIds: item.teamIds || [], workloadConfigId: item.workloadConfigId || nb.workloadConfigId } : null;
}

// One notebook, described afresh; the names in its `included` are remembered.
export async function loadNotebook(id) {
  const described = await api.describeNotebook(id);
  absorb(described.included);
  return joinItem(described.item, described.included);
}

// Notebooks whose Start or Stop is on its way: one at a time each, whatever
// polling redraws meanwhile (the list and the notebook page share it).
const inFlight = new Set();

// What takes focus when a control went: after Start its row has Stop.
const COUNTERPART = { Start: "Stop", Stop: "Start" };

// The control with focus key `key` in `root`, else its counterpart, else
// another of the same notebook's (keys are `<notebook id>:<what>`), an
// action button before the row's link.
function sameOrSibling(root, key) {
  const [notebook, what] = key.split(":");
  const find = (selector) => root.querySelector(selector);
  const prefix = `[data-focus-key^="${CSS.escape(`${notebook}:`)}"]`;
  return (
    find(`[data-focus-key="${CSS.escape(key)}"]`) ||
    (COUNTERPART[what] && find(`[data-focus-key="${CSS.escape(`${notebook}:${COUNTERPART[what]}`)}"]`)) ||
    find(`button${prefix}`) ||
    find(prefix)
  );
}

// Keep focus on "the same" control when a region is re-rendered by polling;
// when none is left (the control went with what it acted on, e.g. an offer
// accepted elsewhere), on the view's heading rather than the page's body,
// unless the caller puts it somewhere itself (`fallback: false`).
export function preserveFocus(root, render, { fallback = true } = {}) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? active.dataset.focusKey : null;
  render();
  if (!key) return;
  const same = sameOrSibling(root, key);
  if (same) same.focus();
  else if (fallback && document.activeElement === document.body) focusHeading(root.closest(".view"));
}

// The buttons for what this member may do now (its role on the notebook and
// the notebook's status); `ctx.errorEl` receives errors and
// `ctx.changed(change?)` is called after a successful change.
export function actionButtons(nb, ctx, { compact = false } = {}) {
  const label = (verb) => (compact ? `${verb} ${nb.name}` : null);
  const buttons = [];
  const add = (verb, cls, onclick) => {
    const button = h("button", {
      type: "button",
      class: cls,
      "aria-label": label(verb),
      dataset: { focusKey: `${nb.id}:${verb}`, action: verb.toLowerCase() },
      onclick,
      text: verb,
    });
    // Redrawn by a poll while its Start or Stop is on its way: still busy.
    if (COUNTERPART[verb] && inFlight.has(nb.id)) markBusy(button, true);
    buttons.push(button);
  };
  if (PROVISIONED.has(nb.status)) {
    add("Open", "primary", () => {
      location.hash = `#/notebooks/${nb.id}/open`;
    });
  }
  const manage = canManage(nb);
  if (manage && STARTABLE.has(nb.status)) {
    add("Start", "primary", () => run(nb, () => api.startNotebook(nb.id), `Starting ${nb.name}`, ctx, "Could not start"));
  }
  if (manage && STOPPABLE.has(nb.status)) {
    add("Stop", "secondary", (ev) => {
      if (inFlight.has(nb.id)) return; // on its way already: not asked again
      confirmStop(nb, ev.currentTarget, () => run(nb, () => api.stopNotebook(nb.id), `Stopping ${nb.name}`, ctx, "Could not stop"));
    });
  }
  if (manage) add("Edit", "secondary", (ev) => openEdit(nb, ctx, ev.currentTarget));
  // Whoever sees a notebook may start one of their own from it (a team's
  // template); on its page only, then that new notebook's page.
  if (!compact) {
    add("Make a copy", "secondary", (ev) =>
      openCreate(ev.currentTarget, (created) => (location.hash = `#/notebooks/${created.item.notebookId}`), { copyOf: nb }),
    );
  }
  if (canAdminister(nb)) add("Delete", "danger-outline", (ev) => confirmDelete(nb, ctx, ev.currentTarget));
  return buttons;
}

// Start and Stop buttons of notebook `id` in the page now (polling may have
// replaced the one clicked).
const liveButtons = (id) =>
  document.querySelectorAll(`[data-focus-key="${CSS.escape(`${id}:Start`)}"], [data-focus-key="${CSS.escape(`${id}:Stop`)}"]`);

// Busy is only marked (markBusy), never `disabled`: the button keeps focus,
// and the redraw after it hands focus to the same control or its counterpart
// (preserveFocus).
async function run(nb, call, message, ctx, failure) {
  if (inFlight.has(nb.id)) return; // a second click while the first is on its way
  inFlight.add(nb.id);
  liveButtons(nb.id).forEach((b) => markBusy(b, true));
  showError(ctx.errorEl, null);
  try {
    await call();
    announce(message);
    // Busy until the page shows what the action changed: the button drawn
    // before it (Start on a notebook now starting) would send it again.
    await ctx.changed();
  } catch (err) {
    showError(ctx.errorEl, err, failure);
    delete ctx.errorEl.dataset.source;
    // The message is above the list; the button may be a page further down.
    ctx.errorEl.scrollIntoView({ block: "nearest" });
  } finally {
    inFlight.delete(nb.id);
    liveButtons(nb.id).forEach((b) => markBusy(b, false));
  }
}

// What `attempt` answers when the API refused.
export const REFUSED = Symbol("refused");

// One API call from `button` (busy meanwhile): the answer, or REFUSED with
// the API's detail shown in `errorEl` (after `context`, when given).
export async function attempt(button, errorEl, context, run) {
  showError(errorEl, null);
  if (button) setBusy(button, true);
  try {
    return await run();
  } catch (err) {
    showError(errorEl, err, context);
    return REFUSED;
  } finally {
    if (button) setBusy(button, false);
  }
}

// ---- dialogs -------------------------------------------------------------

// Cancel or Escape closes a dialog and focus returns to the button that
// opened it; the `finish()` returned closes it after a success without that
// (the caller puts focus where the result is).
export function wireDialog(dialog, returnFocus) {
  let finished = false;
  dialog.querySelectorAll("[data-close]").forEach((b) => {
    b.onclick = () => dialog.close();
  });
  dialog.addEventListener(
    "close",
    () => {
      if (finished || !returnFocus) return;
      // Polling may have redrawn the button that opened it meanwhile.
      const key = returnFocus.dataset?.focusKey;
      const target = returnFocus.isConnected ? returnFocus : key && sameOrSibling(document, key);
      if (target) target.focus();
    },
    { once: true },
  );
  return () => {
    finished = true;
    dialog.close();
  };
}

// The console's dialog pattern (wireDialog), opened.
export function openDialog(dialog, trigger) {
  const finish = wireDialog(dialog, trigger);
  dialog.showModal();
  return finish;
}

// Ask first (Cancel is the default button); `run` is the API call, whose
// refusal stays in the dialog (after `context`, when given); `after` runs
// once it succeeded.
// One dialog serves every question: an answer that comes back after the
// dialog was closed and asked again (Escape, then another row's button)
// belongs to the question it answered, not to the one on screen.
let asked = 0;

export function confirmThen({ trigger, title, text, action, context, run, after }) {
  const dialog = $("#confirm-dialog");
  const error = $("#confirm-error");
  const submit = $("#confirm-submit");
  const cancel = dialog.querySelector("[data-close]");
  const question = ++asked;
  const current = () => question === asked;
  showError(error, null);
  setBusy(submit, false);
  cancel.disabled = false;
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  submit.textContent = action;
  const finish = openDialog(dialog, trigger);
  // Not closed while its answer is on its way (Escape, Cancel): the answer,
  // its refusal or what follows from it, belongs to this question.
  dialog.oncancel = (ev) => {
    if (submit.disabled) ev.preventDefault();
  };
  $("#confirm-form").onsubmit = async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    showError(error, null);
    setBusy(submit, true);
    cancel.disabled = true;
    let refused = null;
    try {
      await run();
    } catch (err) {
      refused = err;
    } finally {
      if (current()) {
        setBusy(submit, false);
        cancel.disabled = false;
      }
    }
    if (refused) {
      if (current()) showError(error, refused, context);
      return;
    }
    if (current()) finish();
    await after(); // done: what follows from it is drawn whichever dialog is up
  };
}

const minutes = (seconds) => (seconds == null ? "" : String(Math.round(seconds / 60)));
const seconds = (input) => (input.value === "" ? undefined : Math.round(Number(input.value) * 60));
// Whether the member changed a timeout field from the minutes it showed. A
// timeout set through the API in seconds that are not whole minutes (450 s)
// is shown rounded (8): saving must not turn it into 480 s unless the member
// typed another number.
const edited = (input, shown) =>
  input.value !== "" && (shown === "" || Number(input.value) !== Number(shown));

// The API's range for a timeout, in the form's unit: its own error names the
// JSON field and counts seconds, which the member never typed.
const TIMEOUT_MINUTES = { min: 5, max: 10080 };
const TIMEOUT_LABELS = { idle: "Idle timeout", detached: "Detached timeout" };

// The first timeout field (of `inputs`) out of range, or past the
// organization's cap (caps.js; "never" too), with what to say; null when all fit.
function badTimeout(inputs) {
  for (const input of inputs) {
    const value = Number(input.value);
    const label = TIMEOUT_LABELS[input.name];
    const fits = Number.isFinite(value) && (value === 0 || (value >= TIMEOUT_MINUTES.min && value <= TIMEOUT_MINUTES.max));
    if (!fits) {
      return { input, detail: `${label} must be 0 (never) or ${TIMEOUT_MINUTES.min} to ${TIMEOUT_MINUTES.max} minutes.` };
    }
    const cap = caps[input.name] / 60;
    if (cap && (value === 0 || value > cap)) {
      return { input, detail: `${label} must be ${TIMEOUT_MINUTES.min} to ${cap} minutes: your organization's limit.` };
    }
  }
  return null;
}

// The caps under a dialog's timeout fields, once read.
function showCaps(hint) {
  const text = capsHint();
  hint.textContent = text;
  hint.hidden = !text;
}

function refusedTimeout(inputs, error) {
  const bad = badTimeout(inputs);
  if (!bad) return false;
  showError(error, { detail: bad.detail });
  bad.input.focus();
  return true;
}

// Whether the signed-in member may have a notebook on `c` (docs/api.md "Who
// may use a config"): the API decides; this keeps a config that could only be
// refused out of New notebook's list.
function mayUse(c) {
  const me = state.me;
  if (c.teamIds == null || me?.organizationAdmin) return true;
  return (me?.teams || []).some(({ teamId }) => c.teamIds.includes(teamId));
}

export async function fillConfigSelect(select, selected, { mine = false, current = () => true } = {}) {
  const listed = (await api.listConfigs()).items;
  if (!current()) return { shown: 0, all: 0 }; // its dialog was opened again meanwhile
  // Another member's notebook (an edit) may be moved to a config its owner
  // may use and the editor may not: the API says which.
  const items = mine ? listed.filter(mayUse) : listed;
  // A new notebook gets the config named "default" (what `make run` creates)
  // when there is one, rather than whichever config is newest.
  if (!items.some((c) => c.id === selected)) selected = (items.find((c) => c.name === "default") || items[0])?.id;
  select.replaceChildren(
    ...items.map((c) => {
      state.configs.set(c.id, c);
      return h("option", { value: c.id, selected: c.id === selected, text: c.name });
    }),
  );
  return { shown: items.length, all: listed.length };
}

// New notebook; with `copyOf` (a notebook the member can see), one that
// starts from the copy of that notebook's file the platform keeps (docs/api.md
// "A notebook's file"), named, described and configured as it is, shared
// with nobody: the copy is the member's own.
let createOpenings = 0; // the latest opening of the dialog: an earlier one's late loads are dropped

export async function openCreate(trigger, onCreated, { copyOf = null } = {}) {
  const opening = ++createOpenings;
  // Opened again while this opening's lists load (Escape, then New notebook
  // or another notebook's Make a copy): this one's late answers must not
  // fill, or submit, that one's form.
  const stale = () => opening !== createOpenings;
  const dialog = $("#create-dialog");
  const form = $("#create-form");
  const error = $("#create-error");
  form.reset();
  showError(error, null);
  $("#create-title").textContent = copyOf ? "Make a copy" : "New notebook";
  $("#nb-source-field").hidden = Boolean(copyOf);
  const copyNote = $("#nb-copy-of");
  copyNote.hidden = !copyOf;
  copyNote.textContent = copyOf ? `Starts from the copy of ${copyOf.name}'s file the platform keeps.` : "";
  if (copyOf) {
    form.name.value = `${[...copyOf.name].slice(0, 121).join("")} (copy)`; // within the 128 a name may have
    form.description.value = copyOf.description || "";
  }
  // Until the lists below have loaded, Enter must not submit the form the
  // browser's way (a GET of the page, which would reload the console).
  form.onsubmit = (ev) => ev.preventDefault();
  // A file chosen before a name is typed names the notebook after it; so
  // does another file chosen instead, while the name is still the first's.
  let named = "";
  form.source.onchange = () => {
    const file = form.source.files[0];
    const current = form.name.value.trim();
    if (current && current !== named) return; // the member's own name
    named = file ? nameOf(file) : "";
    form.name.value = named;
  };
  wireDialog(dialog, trigger);
  dialog.showModal();
  // A timeout goes in only when the member changed it from what the form
  // showed: else the API's default applies, under the caps as they are when
  // it lands (a read of them that failed, or a cap lowered meanwhile, must
  // not turn a value nobody chose into a refusal).
  const shown = { idle: form.idle.value, detached: form.detached.value };
  try {
    // A new notebook's timeouts start at the API's defaults (the
    // organization's, else the platform's), capped as the API caps them.
    const read = await refreshCaps({ force: true });
    if (stale()) return;
    showCaps($("#nb-caps"));
    // Unread, the organization's defaults are unknown: the fields say so,
    // empty, and send nothing unless filled in (the API applies them).
    for (const [input, kind] of [[form.idle, "idle"], [form.detached, "detached"]]) {
      input.placeholder = read ? "" : "organization's default";
      if (input.value === shown[kind]) input.value = shown[kind] = read ? minutes(newTimeout(kind)) : "";
    }
    const configs = await fillConfigSelect($("#nb-config"), copyOf?.workloadConfigId, { mine: true, current: () => !stale() });
    if (stale()) return;
    if (configs.all === 0) {
      showError(error, { detail: "There is no workload config yet: create one under Workload configs first." });
    } else if (configs.shown === 0) {
      showError(error, { detail: "No workload config is open to you: each is kept for teams you are not in. Ask an org admin." });
    }
    const { items: teams } = await api.listTeams();
    if (stale()) return;
    teams.forEach((t) => state.teams.set(t.id, t));
    $("#nb-team-choices").replaceChildren(
      ...teams.map((t) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "teamIds", value: t.id }), ` ${t.name}`),
      ),
    );
    $("#nb-teams-field").hidden = teams.length === 0;
  } catch (err) {
    if (stale()) return;
    showError(error, err);
  }
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const body = {
      name: form.name.value.trim(),
      description: form.description.value,
      workloadConfigId: form.workloadConfigId.value,
    };
    const changed = [form.idle, form.detached].filter((i) => edited(i, shown[i.name]));
    for (const input of changed) body[`${input.name}TimeoutSeconds`] = seconds(input);
    const teamIds = [...form.querySelectorAll("input[name=teamIds]:checked")].map((c) => c.value);
    if (teamIds.length) body.teamIds = teamIds;
    if (refusedTimeout(changed, error)) return;
    const submit = $("#create-submit");
    setBusy(submit, true);
    try {
      const file = copyOf ? null : form.source.files[0];
      if (copyOf) body.copyOf = copyOf.id;
      if (file) {
        body.source = await sourceOf(file);
        if (tooLarge(body)) throw tooLargeError(file);
      }
      const created = await api.createNotebook(body);
      dialog.close();
      announce(`Notebook ${body.name} created`);
      onCreated(created);
    } catch (err) {
      showError(error, err);
    } finally {
      setBusy(submit, false);
    }
  };
}

async function openEdit(nb, ctx, trigger) {
  const dialog = $("#edit-dialog");
  const form = $("#edit-form");
  const error = $("#edit-error");
  showError(error, null);
  form.name.value = nb.name;
  form.description.value = nb.description || "";
  const shownIdle = minutes(nb.idleTimeoutSeconds);
  const shownDetached = minutes(nb.detachedTimeoutSeconds);
  form.idle.value = shownIdle;
  form.detached.value = shownDetached;
  const select = $("#edit-config");
  select.replaceChildren(h("option", { value: nb.workloadConfigId, text: configName(nb.workloadConfigId) }));
  select.disabled = !STARTABLE.has(nb.status);
  $("#edit-caps").hidden = true;
  refreshCaps({ force: true }).then(() => showCaps($("#edit-caps")));
  wireDialog(dialog, trigger);
  dialog.showModal();
  form.name.select();
  if (!select.disabled) {
    fillConfigSelect(select, nb.workloadConfigId).catch((err) => showError(error, err));
  }
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const patch = {};
    if (form.name.value.trim() !== nb.name) patch.name = form.name.value.trim();
    if (form.description.value !== (nb.description || "")) patch.description = form.description.value;
    // A timeout goes in only when its field no longer shows what it showed.
    if (edited(form.idle, shownIdle)) patch.idleTimeoutSeconds = seconds(form.idle);
    if (edited(form.detached, shownDetached)) patch.detachedTimeoutSeconds = seconds(form.detached);
    if (!select.disabled && select.value && select.value !== nb.workloadConfigId) {
      patch.workloadConfigId = select.value;
    }
    if (Object.keys(patch).length === 0) {
      dialog.close();
      return;
    }
    const changed = [form.idle, form.detached].filter((i, n) => edited(i, [shownIdle, shownDetached][n]));
    if (refusedTimeout(changed, error)) return;
    const submit = $("#edit-submit");
    setBusy(submit, true);
    try {
      await api.updateNotebook(nb.id, patch);
      dialog.close();
      announce(`Notebook ${patch.name || nb.name} saved`);
      ctx.changed();
    } catch (err) {
      showError(error, err);
    } finally {
      setBusy(submit, false);
    }
  };
}

// Stopping a notebook someone else may be working in (not the member's own,
// and running: a member is present; or detached: a cell runs) ends their
// session and what its kernel holds: asked first. One's own stops at once.
export function confirmStop(nb, trigger, stop) {
  // Idle with its kernel's activity unknown (the status message says so) may be running a cell.
  const busy = ["running", "detached"].includes(nb.status) || (nb.status === "idle" && nb.statusMessage);
  if (accessTo(nb) === "owner" || !busy) return stop();
  const dialog = $("#stop-dialog");
  $("#stop-title").textContent = `Stop “${nb.name}”?`;
  $("#stop-text").textContent =
    `${nb.status === "running" ? "Someone may be working in it" : "A cell may be running in it"}: ` +
    "stopping ends their session and what its kernel holds, for everyone. Saved files stay.";
  wireDialog(dialog, trigger);
  dialog.showModal();
  $("#stop-form").onsubmit = (ev) => {
    ev.preventDefault();
    dialog.close();
    stop();
  };
}

// What a delete does, with how long it can be undone (the platform's
// NOTEBOOKS_TRASH_DAYS, as GET /organization says; until read, vaguely).
function deleteText(nb) {
  const days = caps.trashDays;
  const undo =
    days === 0
      ? "This cannot be undone."
      : days
        ? `Its file and settings stay ${days === 1 ? "1 day" : `${days} days`} under Recently deleted, from where it can be brought back.`
        : "Its file and settings are usually kept a while under Recently deleted, from where it can be brought back.";
  return (
    "The notebook and its file are removed for everyone it is shared with. " +
    (PROVISIONED.has(nb.status) || nb.status === "starting" ? "It is running and will be stopped first. " : "") +
    undo
  );
}

function confirmDelete(nb, ctx, trigger) {
  const dialog = $("#delete-dialog");
  const error = $("#delete-error");
  showError(error, null);
  $("#delete-title").textContent = `Delete “${nb.name}”?`;
  $("#delete-text").textContent = deleteText(nb);
  wireDialog(dialog, trigger);
  dialog.showModal();
  refreshCaps().then(() => {
    if (dialog.open && $("#delete-title").textContent === `Delete “${nb.name}”?`) $("#delete-text").textContent = deleteText(nb);
  });
  $("#delete-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const submit = $("#delete-submit");
    setBusy(submit, true);
    try {
      await api.deleteNotebook(nb.id);
      dialog.close();
      announce(`Notebook ${nb.name} deleted`);
      ctx.changed({ deleted: nb.id });
    } catch (err) {
      showError(error, err);
    } finally {
      setBusy(submit, false);
    }
  };
}
