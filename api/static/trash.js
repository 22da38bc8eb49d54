// Recently deleted (#/deleted): the notebooks the member could have deleted
// (their own, their teams' as a team admin; an org admin: the
// organization's), kept a while after their delete to be
// brought back, downloaded or forgotten at once (docs/api.md "Recently
// deleted", docs/console.md). Read on each visit; it does not poll.

import { confirmThen } from "./actions.js";
import { api } from "./api.js";
import { $, announce, exactTime, focusHeading, formatTime, h, isBusy, markBusy, showError } from "./dom.js";
import { saveFile } from "./download.js";
import { absorb, memberLabel } from "./store.js";

const view = { visit: 0 };

async function load() {
  const visit = ++view.visit;
  const body = $("#deleted-body");
  const region = $("#view-deleted");
  region.setAttribute("aria-busy", "true");
  try {
    const { items, included } = await api.deletedNotebooks();
    if (visit !== view.visit) return; // left meanwhile
    absorb(included);
    $("#deleted-empty").hidden = items.length > 0;
    $("#deleted-table").hidden = items.length === 0;
    body.replaceChildren(...items.map(row));
  } catch (err) {
    if (visit === view.visit) showError($("#deleted-error"), err, "Could not list them");
  } finally {
    if (visit === view.visit) region.removeAttribute("aria-busy");
  }
}

function row(item) {
  const button = (text, label, onclick, cls = "secondary") =>
    h("button", { type: "button", class: cls, text, "aria-label": `${label} ${item.name}`, onclick });
  return h(
    "tr",
    { dataset: { deleted: item.notebookId } },
    h("td", { "data-label": "Name", text: item.name }),
    h("td", { "data-label": "Owner", text: memberLabel(item.memberId) }),
    h("td", { "data-label": "Deleted" }, formatTime(item.deletedAt), item.deletedBy && item.deletedBy !== item.memberId ? ` by ${memberLabel(item.deletedBy)}` : ""),
    h("td", { "data-label": "Kept until", text: exactTime(item.keptUntil) }),
    h(
      "td",
      { class: "actions" },
      button("Bring back", "Bring back", (ev) => bringBack(item, ev.currentTarget)),
      " ",
      button("Download .py", "Download", (ev) => download(item, ev.currentTarget)),
      " ",
      button("Delete now", "Delete now", (ev) => forget(item, ev.currentTarget), "danger-outline"),
    ),
  );
}

// A new notebook, its owner's again, stopped; its page next. Its config
// deleted since (409 config_gone), or not its owner's to use (403
// config_not_allowed): another is chosen in the row.
async function bringBack(item, trigger, body = undefined) {
  if (isBusy(trigger)) return;
  markBusy(trigger, true);
  showError($("#deleted-error"), null);
  try {
    const created = await api.bringBack(item.notebookId, body);
    announce(`${item.name} is back`);
    location.hash = `#/notebooks/${encodeURIComponent(created.item.notebookId)}`;
  } catch (err) {
    const why = { config_gone: "Its workload config was deleted since", config_not_allowed: err.detail }[err.code];
    if (why) await chooseConfig(item, trigger, why);
    else showError($("#deleted-error"), err, `Could not bring ${item.name} back`);
  } finally {
    markBusy(trigger, false);
  }
}

async function chooseConfig(item, trigger, why) {
  let configs;
  try {
    ({ items: configs } = await api.listConfigs());
  } catch (err) {
    showError($("#deleted-error"), err, "Could not list the workload configs");
    return;
  }
  const cell = trigger.closest("td");
  cell.querySelector(".choose-config")?.remove(); // one chooser per row
  if (configs.length === 0) {
    showError($("#deleted-error"), { detail: `${why}, and there is no workload config to choose.` });
    return;
  }
  const select = h("select", { "aria-label": `Workload config for ${item.name}` }, ...configs.map((c) => h("option", { value: c.id, text: c.name })));
  const chooser = h(
    "div",
    { class: "choose-config" },
    h("span", { class: "hint", text: `${why}: choose another. ` }),
    select,
    " ",
    h("button", { type: "button", class: "primary", text: "Bring back with this config", onclick: (ev) => bringBack(item, ev.currentTarget, { workloadConfigId: select.value }) }),
    " ",
    h("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => { chooser.remove(); trigger.focus(); } }),
  );
  cell.append(chooser);
  select.focus();
}

async function download(item, button) {
  if (isBusy(button)) return;
  markBusy(button, true);
  showError($("#deleted-error"), null);
  try {
    const name = saveFile(await api.deletedNotebookFile(item.notebookId));
    announce(`Downloaded ${name}`);
  } catch (err) {
    showError($("#deleted-error"), err, "Could not download the file");
  } finally {
    markBusy(button, false);
  }
}

function forget(item, trigger) {
  confirmThen({
    trigger,
    title: `Delete “${item.name}” for good?`,
    text: "Its file and settings go now, not at the end of its days here: it can no longer be brought back. Use this when its file held a secret.",
    action: "Delete now",
    context: "Could not delete it",
    run: () => api.forgetDeleted(item.notebookId),
    after: async () => {
      announce(`${item.name} is deleted for good`);
      await load();
      focusHeading($("#view-deleted")); // its row, and the button, are gone
    },
  });
}

export const trashView = {
  el: () => $("#view-deleted"),
  enter() {
    showError($("#deleted-error"), null);
    $("#deleted-table").hidden = true;
    $("#deleted-empty").hidden = true;
    load();
  },
  leave() {
    view.visit += 1; // an answer on its way is dropped
  },
};
