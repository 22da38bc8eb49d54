// The organization's activity, for its org admins (#/activity): every
// notebook's history in one feed, newest first, deleted notebooks' too
// (docs/console.md, "Activity"). A name in it shows what that member did
// alone (#/activity/{member}; "the platform": #/activity/reconciler); a
// deleted notebook's, its whole history (#/activity/notebook/{id}: the one
// page that shows it, as a notebook's own page is gone with it). Read
// again as the other views are (Poller); "Show older" pages by the API's
// marker, kept while nothing new comes (events.js, takeLatest).

import { api } from "./api.js";
import { $, h, showAdminNav, showError } from "./dom.js";
import { actorLabel, eventEntry, noHistory, olderShown, showHistory, takeLatest } from "./events.js";
import { Poller, absorb, memberLabel, state } from "./store.js";

const SHOWN = 50;

const view = {
  visit: 0,
  actor: null,
  notebook: null, // a deleted notebook's history alone
  poller: null,
  history: noHistory(),
  capped: false, // more entries than `total` says
  notebooks: new Map(), // the shown entries' notebooks that are still there
  reads: 0,
};

const route = (actor) => (actor ? `#/activity/${encodeURIComponent(actor)}` : "#/activity");

// The page's notebooks as they are now: one of its entries' notebooks left
// out of `included` was deleted (since it was last shown, maybe).
function keepNotebooks(page) {
  absorb(page.included);
  for (const e of page.items) view.notebooks.delete(e.notebookId);
  for (const nb of page.included?.notebooks || []) view.notebooks.set(nb.id, nb);
}

// The notebook an entry is about: a link to its page while it is there, else
// the name its events kept (none for the oldest: the id).
function subject(e) {
  const nb = view.notebooks.get(e.notebookId);
  if (nb) {
    const href = `#/notebooks/${encodeURIComponent(nb.id)}`;
    return h("a", { href, class: "activity-notebook", dataset: { focusKey: `nb:${e.id}` }, text: nb.name });
  }
  const name = e.notebookName ? `“${e.notebookName}”` : e.notebookId;
  const text = `${name} (deleted)`;
  if (e.notebookId === view.notebook) return h("span", { class: "activity-notebook", text });
  return h("a", {
    href: `#/activity/notebook/${encodeURIComponent(e.notebookId)}`,
    class: "activity-notebook",
    title: "Its whole history",
    dataset: { focusKey: `nb:${e.id}` },
    text,
  });
}

// Who acted: a link to their activity alone, unless that is what is shown.
function who(e) {
  if (e.actor === view.actor) return null;
  return h("a", {
    href: route(e.actor),
    title: `Only what ${actorLabel(e.actor)} did`,
    dataset: { focusKey: `who:${e.id}` },
    text: actorLabel(e.actor),
  });
}

function render() {
  showHistory($("#activity-list"), view.history, {
    entry: (e) => eventEntry(e, { subject: h("span", {}, subject(e), " "), who: who(e) }),
    empty: view.actor ? "Nothing done yet." : "Nothing yet: no notebook has been started or changed.",
    more: $("#activity-more"),
    older: $("#activity-older"),
    capped: view.capped, // past 10,000 the API stops counting (totalCapped)
  });
}

function showFilter() {
  let title = "Activity";
  if (view.notebook) {
    const kept = view.history.latest.find((e) => e.notebookName)?.notebookName;
    title = `History of ${kept ? `“${kept}”` : view.notebook} (deleted)`;
  } else if (view.actor === "reconciler") title = "What the platform did";
  else if (view.actor) title = `What ${memberLabel(view.actor)} did`;
  $("#activity-title").textContent = title;
  $("#activity-filter").hidden = !view.actor && !view.notebook;
}

async function refresh() {
  const { visit, actor, notebook } = view;
  const read = ++view.reads; // a later read's answer wins
  let page;
  try {
    page = await api.activity({ limit: SHOWN, actor, notebook });
  } catch (err) {
    if (visit !== view.visit) return false;
    if (err.status === 403) return refuse(); // no longer an org admin
    showError($("#activity-error"), err, "Could not load the activity");
    return false;
  }
  if (visit !== view.visit || read !== view.reads) return false;
  showError($("#activity-error"), null);
  keepNotebooks(page);
  view.history = takeLatest(view.history, page);
  view.capped = !!page.totalCapped;
  showFilter(); // the member's name is known once their entries came
  render();
  return false;
}

// Not (or no longer) an org admin: nothing of the activity stays on screen,
// nor is asked for again, nor offered in the top bar.
function refuse() {
  view.poller?.stop();
  view.history = noHistory();
  $("#activity-list").replaceChildren();
  $("#activity-more").hidden = true;
  $("#activity-older").hidden = true;
  $("#activity-filter").hidden = true;
  showAdminNav(false);
  showError($("#activity-error"), { detail: "Only organization admins see the organization's activity." });
  return false;
}

async function showOlder(ev) {
  const button = ev.currentTarget;
  const { visit, history, actor, notebook } = view;
  button.disabled = true;
  let page;
  try {
    page = await api.activity({ limit: SHOWN, actor, notebook, marker: history.marker });
  } catch (err) {
    if (visit === view.visit) showError($("#activity-error"), err, "Could not load older entries");
    return;
  } finally {
    button.disabled = false;
  }
  // Something new came meanwhile: this page may not follow the latest shown.
  if (visit !== view.visit || view.history !== history) return;
  keepNotebooks(page);
  history.older.push(...page.items);
  history.marker = page.marker || null;
  render();
  olderShown(page.items.length, button, $("#activity-title"));
}

export const activityView = {
  el: () => $("#view-activity"),
  enter({ actor = null, notebook = null }) {
    view.visit += 1;
    view.actor = actor;
    view.notebook = notebook;
    view.history = noHistory();
    view.capped = false;
    view.notebooks = new Map();
    $("#activity-list").replaceChildren();
    $("#activity-more").hidden = true;
    $("#activity-older").hidden = true;
    $("#activity-older").onclick = showOlder;
    showError($("#activity-error"), null);
    showFilter();
    if (!state.me?.organizationAdmin) {
      refuse();
      return;
    }
    view.poller = new Poller(refresh, $("#activity-list"));
    view.poller.start();
  },
  leave() {
    view.visit += 1; // answers on their way are dropped
    view.poller?.stop();
    view.poller = null;
  },
};
