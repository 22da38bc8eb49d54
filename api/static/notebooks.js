// The notebooks list and the single-notebook view, both kept live by polling.

import { actionButtons, joinItem, loadNotebook, openCreate, preserveFocus } from "./actions.js";
import { api } from "./api.js";
import { $, announce, formatTime, formatTimeout, h, showError, statusBadge } from "./dom.js";
import { Poller, TRANSITIONAL, absorb, configName, memberLabel, state, teamName } from "./store.js";

const lastStatus = new Map();

function noteStatus(nb) {
  const before = lastStatus.get(nb.id);
  if (before && before !== nb.status) announce(`${nb.name} is now ${nb.status}`);
  lastStatus.set(nb.id, nb.status);
}

function teamsText(teamIds) {
  return teamIds.length ? teamIds.map(teamName).join(", ") : "—";
}

// ---- list ----------------------------------------------------------------

const list = {
  poller: null,
  rows: new Map(),
};

function rowFor(nb, ctx) {
  const message = nb.statusMessage
    ? h("div", { class: `status-message small status-text-${nb.status}`, title: nb.statusMessage, text: nb.statusMessage })
    : null;
  return h(
    "tr",
    { dataset: { notebookId: nb.id, status: nb.status } },
    h(
      "td",
      { "data-label": "Name" },
      h("a", { href: `#/notebooks/${nb.id}`, class: "nb-link", dataset: { focusKey: `${nb.id}:link` }, text: nb.name }),
      nb.description ? h("div", { class: "muted small clamp", text: nb.description }) : null,
    ),
    h("td", { "data-label": "Status" }, statusBadge(nb.status), message),
    h("td", { "data-label": "Owner", text: memberLabel(nb.memberId) }),
    h("td", { "data-label": "Teams", text: teamsText(nb.teamIds) }),
    h("td", { "data-label": "Last active" }, formatTime(nb.lastActiveAt)),
    h("td", { class: "row-actions" }, actionButtons(nb, ctx, { compact: true })),
  );
}

async function refreshList() {
  const errorEl = $("#notebooks-error");
  let page;
  try {
    page = await api.listNotebooks();
  } catch (err) {
    showError(errorEl, err, "Could not load notebooks");
    errorEl.dataset.source = "load";
    return false;
  }
  // A failed poll's message goes once polling works again; an action's stays.
  if (errorEl.dataset.source === "load") {
    showError(errorEl, null);
    delete errorEl.dataset.source;
  }
  absorb(page.included);
  const notebooks = page.items.map((item) => joinItem(item, page.included)).filter(Boolean);
  const ctx = { errorEl, changed: () => list.poller.now() };
  const body = $("#notebooks-body");
  preserveFocus(body, () => {
    body.replaceChildren(...notebooks.map((nb) => rowFor(nb, ctx)));
  });
  notebooks.forEach(noteStatus);
  $("#notebooks-empty").hidden = notebooks.length > 0;
  $("#notebooks-table").hidden = notebooks.length === 0;
  return notebooks.some((nb) => TRANSITIONAL.has(nb.status));
}

export const listView = {
  el: () => $("#view-notebooks"),
  enter() {
    const errorEl = $("#notebooks-error");
    showError(errorEl, null);
    $("#new-notebook").onclick = (ev) =>
      openCreate(ev.currentTarget, (created) => {
        list.poller.now();
        // Land on the new notebook's row so keyboard users can start it.
        setTimeout(() => {
          const link = document.querySelector(`[data-focus-key="${CSS.escape(created.item.notebookId)}:link"]`);
          if (link) link.focus();
        }, 300);
      });
    list.poller = new Poller(refreshList);
    list.poller.start();
  },
  leave() {
    list.poller?.stop();
  },
  refresh() {
    list.poller?.now();
  },
};

// ---- one notebook --------------------------------------------------------

const detail = { id: null, poller: null, nb: null };

function fact(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

async function refreshDetail() {
  const errorEl = $("#nb-error");
  let nb;
  try {
    nb = await loadNotebook(detail.id);
  } catch (err) {
    showError(errorEl, err, "Could not load the notebook");
    return false;
  }
  detail.nb = nb;
  noteStatus(nb);
  $("#nb-title").textContent = nb.name;
  document.title = `${nb.name} · Notebooks`;
  $("#nb-status").replaceChildren(statusBadge(nb.status));
  const message = $("#nb-message");
  message.textContent = nb.statusMessage || "";
  message.className = `status-message status-text-${nb.status}`;
  $("#nb-description").textContent = nb.description || "";
  const ctx = {
    errorEl,
    changed: (change) => {
      if (change?.deleted) location.hash = "#/notebooks";
      else detail.poller.now();
    },
  };
  const actions = $("#nb-actions");
  preserveFocus(actions, () => actions.replaceChildren(...actionButtons(nb, ctx)));
  $("#nb-facts").replaceChildren(
    ...fact("Owner", memberLabel(nb.memberId)),
    ...fact("Workload config", configName(nb.workloadConfigId)),
    ...fact("Teams", teamsText(nb.teamIds)),
    ...fact("Last active", formatTime(nb.lastActiveAt)),
    ...fact("Idle timeout", formatTimeout(nb.idleTimeoutSeconds)),
    ...fact("Detached timeout", formatTimeout(nb.detachedTimeoutSeconds)),
    ...fact("Session", nb.sessionId || "—"),
    ...fact("Created", formatTime(nb.createdAt), ` by ${memberLabel(nb.createdBy)}`),
    ...fact("Updated", formatTime(nb.updatedAt), ` by ${memberLabel(nb.updatedBy)}`),
    ...fact("ID", h("code", { text: nb.id })),
  );
  return TRANSITIONAL.has(nb.status);
}

async function refreshTeams() {
  const errorEl = $("#teams-error");
  try {
    const [assigned, all] = await Promise.all([api.notebookTeams(detail.id), api.listTeams()]);
    absorb(assigned.included);
    all.items.forEach((t) => state.teams.set(t.id, t));
    // Items are team objects (with `id`), or normalized `{teamId}` refs.
    const ids = assigned.items.map((t) => {
      if (t.id) state.teams.set(t.id, t);
      return t.id || t.teamId;
    });
    const ul = $("#nb-teams");
    preserveFocus(ul, () =>
      ul.replaceChildren(
        ...(ids.length
          ? ids.map((id) =>
              h(
                "li",
                {},
                h("span", { text: teamName(id) }),
                h("button", {
                  type: "button",
                  class: "danger-outline small",
                  "aria-label": `Remove team ${teamName(id)}`,
                  dataset: { focusKey: `team:${id}` },
                  text: "Remove",
                  onclick: () => removeTeam(id),
                }),
              ),
            )
          : [h("li", { class: "muted", text: "Not shared with any team." })]),
      ),
    );
    const available = all.items.filter((t) => !ids.includes(t.id));
    const select = $("#add-team-select");
    select.replaceChildren(...available.map((t) => h("option", { value: t.id, text: t.name })));
    $("#add-team-form").hidden = available.length === 0;
  } catch (err) {
    showError(errorEl, err, "Could not load teams");
  }
}

async function removeTeam(teamId) {
  const errorEl = $("#teams-error");
  showError(errorEl, null);
  try {
    await api.removeNotebookTeam(detail.id, teamId);
    announce(`Team ${teamName(teamId)} removed`);
  } catch (err) {
    showError(errorEl, err, "Could not remove the team");
  }
  await refreshTeams();
  detail.poller.now();
  $("#add-team-select").focus();
}

export const detailView = {
  el: () => $("#view-notebook"),
  enter({ id }) {
    detail.id = id;
    showError($("#nb-error"), null);
    showError($("#teams-error"), null);
    $("#nb-title").textContent = "Notebook";
    $("#add-team-form").onsubmit = async (ev) => {
      ev.preventDefault();
      const teamId = $("#add-team-select").value;
      const errorEl = $("#teams-error");
      showError(errorEl, null);
      try {
        await api.addNotebookTeams(detail.id, [teamId]);
        announce(`Team ${teamName(teamId)} added`);
      } catch (err) {
        showError(errorEl, err, "Could not add the team");
      }
      await refreshTeams();
      detail.poller.now();
    };
    detail.poller = new Poller(refreshDetail);
    detail.poller.start();
    refreshTeams();
  },
  leave() {
    detail.poller?.stop();
  },
  refresh() {
    detail.poller?.now();
  },
};
