// Webhooks (#/webhooks, org admins): the URLs told of the organization's
// notebooks' status changes, added (the signing secret shown once),
// deleted, and each one's newest deliveries (docs/api.md "Webhooks",
// docs/console.md). Read on each visit; it does not poll.

import { confirmThen } from "./actions.js";
import { api } from "./api.js";
import { $, announce, exactTime, focusHeading, formatTime, h, isBusy, markBusy, secretBox, setBusy, showError } from "./dom.js";

const STATUSES = ["starting", "running", "idle", "detached", "stopping", "stopped", "failed"];
// `visit`: this visit to the page (answers for an earlier one are dropped);
// `shown`: the webhook whose deliveries are shown; `editing`: the webhook
// the form edits (null: the form adds one).
const view = { visit: 0, shown: null, editing: null };

async function load() {
  const visit = view.visit;
  const region = $("#view-webhooks");
  region.setAttribute("aria-busy", "true");
  try {
    const { items } = await api.webhooks();
    if (visit !== view.visit) return;
    $("#webhooks-empty").hidden = items.length > 0;
    $("#webhooks-table").hidden = items.length === 0;
    $("#webhooks-body").replaceChildren(...items.map(row));
  } catch (err) {
    if (visit === view.visit) showError($("#webhooks-error"), err, "Could not list the webhooks");
  } finally {
    if (visit === view.visit) region.removeAttribute("aria-busy");
  }
}

// A row's button (`data-action`), to give focus back to after its row was drawn again.
const rowButton = (id, action) => document.querySelector(`[data-webhook="${CSS.escape(id)}"] [data-action="${action}"]`);

const told = (hook) => (hook.statuses.length ? hook.statuses.join(", ") : "every status change");

function row(hook) {
  const label = hook.description ? `${hook.url} (${hook.description})` : hook.url;
  return h(
    "tr",
    { dataset: { webhook: hook.id } },
    h("td", { "data-label": "URL" }, h("code", { text: hook.url }), hook.description ? h("div", { class: "muted", text: hook.description }) : ""),
    h(
      "td",
      { "data-label": "Tells of" },
      hook.enabled ? told(hook) : h("strong", { text: "Nothing: disabled" }),
      hook.enabled ? "" : h("div", { class: "muted", dataset: { disabledReason: hook.id }, text: `${hook.disabledReason || ""} Since ${exactTime(hook.disabledAt)}.`.trim() }),
    ),
    h(
      "td",
      { "data-label": "Added", title: exactTime(hook.createdAt) },
      formatTime(hook.createdAt),
      hook.previousSecretUntil && Date.parse(hook.previousSecretUntil) > Date.now()
        ? h("div", { class: "muted", text: `Its old secret signs too until ${exactTime(hook.previousSecretUntil)}` })
        : "",
    ),
    h(
      "td",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", text: "Edit", "aria-label": `Edit ${label}`, dataset: { action: "edit" }, onclick: () => edit(hook) }),
      " ",
      h("button", { type: "button", class: "secondary", text: hook.enabled ? "Disable" : "Enable", "aria-label": `${hook.enabled ? "Disable" : "Enable"} ${label}`, dataset: { action: "switch" }, onclick: (ev) => switchOver(hook, ev.currentTarget) }),
      " ",
      hook.enabled ? h("button", { type: "button", class: "secondary", text: "Send test", "aria-label": `Send a test to ${label}`, onclick: (ev) => sendTest(hook, ev.currentTarget) }) : "",
      " ",
      h("button", { type: "button", class: "secondary", text: "Deliveries", "aria-label": `Deliveries of ${label}`, dataset: { action: "deliveries" }, onclick: (ev) => showDeliveries(hook, ev.currentTarget) }),
      " ",
      h("button", { type: "button", class: "secondary", text: "New secret", "aria-label": `New secret for ${label}`, dataset: { action: "rotate" }, onclick: (ev) => rotate(hook, ev.currentTarget) }),
      " ",
      h("button", { type: "button", class: "danger-outline", text: "Delete", "aria-label": `Delete ${label}`, onclick: (ev) => remove(hook, ev.currentTarget) }),
    ),
  );
}

// A delivery as the admin reads it: how it went, and why not.
function deliveryRow(d) {
  const pending = d.held ? "Held while the webhook is disabled" : d.attempts ? `Tried again ${formatTime(d.nextAttemptAt)}` : "Waiting to be sent";
  const how = { delivered: `Delivered ${d.deliveredAt ? formatTime(d.deliveredAt) : ""}`.trim(), failed: "Given up", pending }[d.status];
  const answer = d.lastError || (d.responseStatus ? `${d.responseStatus}` : "—");
  return h(
    "tr",
    { dataset: { delivery: d.id } },
    h("td", { "data-label": "Status change", title: exactTime(d.createdAt) }, d.type === "webhook.test" ? "a test, " : `${d.toStatus || "?"}, `, formatTime(d.createdAt)),
    h("td", { "data-label": "Notebook", text: d.notebookName || d.notebookId || "—" }),
    h("td", { "data-label": "Delivery", text: how }),
    h("td", { "data-label": "Attempts", class: "num", text: String(d.attempts) }),
    h("td", { "data-label": "Last answer", text: answer }),
  );
}

async function showDeliveries(hook, button, { focus = true } = {}) {
  if (isBusy(button)) return;
  const visit = view.visit;
  markBusy(button, true);
  showError($("#webhooks-error"), null);
  try {
    const { items } = await api.webhookDeliveries(hook.id);
    if (visit !== view.visit) return;
    view.shown = hook.id;
    const panel = $("#deliveries-panel");
    $("#deliveries-title").textContent = `Deliveries to ${hook.url}`;
    $("#deliveries-empty").hidden = items.length > 0;
    $("#deliveries-table").hidden = items.length === 0;
    $("#deliveries-body").replaceChildren(...items.map(deliveryRow));
    panel.hidden = false;
    if (focus) {
      const heading = $("#deliveries-title");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  } catch (err) {
    if (visit === view.visit) showError($("#webhooks-error"), err, "Could not read the deliveries");
  } finally {
    markBusy(button, false);
  }
}

// Disabled: told of nothing until enabled again (a receiver down for
// maintenance); enabled again: told of changes from now on. The workers
// disable one none of whose deliveries succeeded for days, saying why.
async function switchOver(hook, button) {
  if (isBusy(button)) return;
  const visit = view.visit;
  markBusy(button, true);
  showError($("#webhooks-error"), null);
  try {
    const done = await api.updateWebhook(hook.id, { enabled: !hook.enabled });
    if (visit !== view.visit) return;
    announce(done.enabled ? `${hook.url} enabled: told of status changes again` : `${hook.url} disabled: told of nothing`);
    document.querySelector(`[data-webhook="${CSS.escape(hook.id)}"]`)?.replaceWith(row(done)); // as the API has it now
    rowButton(hook.id, "switch")?.focus();
  } catch (err) {
    if (visit === view.visit) showError($("#webhooks-error"), err, "Could not change it");
  } finally {
    markBusy(button, false);
  }
}

// A delivery of type webhook.test, sent within seconds like any other.
async function sendTest(hook, button) {
  if (isBusy(button)) return;
  markBusy(button, true);
  showError($("#webhooks-error"), null);
  try {
    await api.testWebhook(hook.id);
    announce(`Test sent to ${hook.url}: it shows under its deliveries within seconds`);
    const shownButton = view.shown === hook.id && rowButton(hook.id, "deliveries");
    if (shownButton) await showDeliveries(hook, shownButton, { focus: false }); // the test listed
  } catch (err) {
    showError($("#webhooks-error"), err, "Could not send a test");
  } finally {
    markBusy(button, false);
  }
}

// A new signing secret, shown once; the old one signs beside it for a day.
function rotate(hook, trigger) {
  const visit = view.visit;
  let made = null;
  const overlapping = hook.previousSecretUntil && Date.parse(hook.previousSecretUntil) > Date.now();
  confirmThen({
    trigger,
    title: "Give this webhook a new secret?",
    text: `Deliveries to ${hook.url} are signed with the new secret from now on, and with the current one beside it for a day, so its receiver can change over without refusing one. The new secret is shown once.${overlapping ? " The secret before the current one stops signing now." : ""}`,
    action: "New secret",
    context: "Could not give it a new secret",
    run: async () => {
      made = await api.rotateWebhookSecret(hook.id);
    },
    after: async () => {
      if (visit !== view.visit) return; // left: the secret is not put in a page no one sees
      await load();
      showSecret(made, "rotate");
    },
  });
}

function remove(hook, trigger) {
  confirmThen({
    trigger,
    title: "Delete this webhook?",
    text: `${hook.url} is told of nothing from now on; deliveries not sent yet are dropped, and their list goes with it.`,
    action: "Delete",
    context: "Could not delete it",
    run: () => api.deleteWebhook(hook.id),
    after: async () => {
      announce("Webhook deleted");
      if (view.shown === hook.id) {
        view.shown = null;
        $("#deliveries-panel").hidden = true;
      }
      await load();
      focusHeading($("#view-webhooks")); // its row, and the button, are gone
    },
  });
}

// The secret, once: it signs every delivery, and the API never answers it
// again. Done gives focus to `returnTo` (else the form's URL field).
function showSecret(made, returnTo = null) {
  const box = secretBox({
    id: `webhook-secret-${made.id}`,
    title: `Webhook to ${made.url}`,
    warning: "Copy its signing secret now: it will not be shown again. The receiver checks each delivery's webhook-signature with it (Standard Webhooks).",
    label: "Signing secret",
    noun: "secret",
    value: made.secret,
    copyLabel: "Copy secret",
    onDone: () => {
      $("#webhook-secret").replaceChildren();
      const target = returnTo ? rowButton(made.id, returnTo) : null;
      (target || $("#webhook-url")).focus();
    },
  });
  $("#webhook-secret").replaceChildren(box);
  const input = box.querySelector("input");
  input.focus();
  input.select();
}

// The form edits `hook` (its URL, description, statuses; its secret stays),
// or adds one again (null).
function edit(hook) {
  const form = $("#webhook-form");
  view.editing = hook;
  form.reset();
  showError($("#webhook-form-error"), null);
  $("#new-webhook-title").textContent = hook ? "Edit webhook" : "Add a webhook";
  $("#webhook-submit").textContent = hook ? "Save webhook" : "Add webhook";
  $("#webhook-cancel").hidden = !hook;
  if (hook) {
    form.url.value = hook.url;
    form.description.value = hook.description;
    for (const box of form.querySelectorAll("input[name=statuses]")) box.checked = hook.statuses.includes(box.value);
    form.url.focus();
  }
}

async function add(ev) {
  ev.preventDefault();
  const form = $("#webhook-form");
  const error = $("#webhook-form-error");
  const submit = $("#webhook-submit");
  if (submit.disabled) return;
  const url = form.url.value.trim();
  if (!url) {
    showError(error, { detail: "Enter the URL to send to." });
    form.url.focus();
    return;
  }
  const body = { url, statuses: [...form.querySelectorAll("input[name=statuses]:checked")].map((c) => c.value) };
  const editing = view.editing;
  if (form.description.value.trim() || editing) body.description = form.description.value.trim();
  const visit = view.visit;
  showError(error, null);
  setBusy(submit, true);
  try {
    if (editing) {
      await api.updateWebhook(editing.id, body);
      if (visit !== view.visit) return;
      edit(null);
      await load();
      announce("Webhook saved");
      rowButton(editing.id, "edit")?.focus();
      return;
    }
    const made = await api.createWebhook(body);
    if (visit !== view.visit) return; // left: the secret is not put in a page no one sees
    form.reset();
    await load();
    showSecret(made);
  } catch (err) {
    if (visit !== view.visit) return;
    showError(error, err, editing ? "Could not save the webhook" : "Could not add the webhook");
    if (err.status === 400) form.url.focus();
  } finally {
    setBusy(submit, false);
  }
}

export const webhooksView = {
  el: () => $("#view-webhooks"),
  enter() {
    view.visit += 1;
    view.shown = null;
    showError($("#webhooks-error"), null);
    showError($("#webhook-form-error"), null);
    $("#webhook-secret").replaceChildren();
    $("#deliveries-panel").hidden = true;
    $("#webhooks-table").hidden = true;
    $("#webhooks-empty").hidden = true;
    $("#webhook-statuses").replaceChildren(
      ...STATUSES.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "statuses", value: s }), ` ${s}`)),
    );
    $("#webhook-form").onsubmit = add;
    $("#webhook-cancel").onclick = () => {
      const was = view.editing;
      edit(null);
      if (was) rowButton(was.id, "edit")?.focus();
    };
    edit(null);
    load();
  },
  leave() {
    view.visit += 1; // answers on their way are dropped
    $("#webhook-secret").replaceChildren();
  },
};
