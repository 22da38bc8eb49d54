// The notebooks list and the single-notebook view, both kept live by polling.

import { REFUSED, actionButtons, attempt, confirmThen, joinItem, loadNotebook, openCreate, preserveFocus } from "./actions.js";
import { api, notFound, refused } from "./api.js";
import { capped, caps, refreshCaps, timeoutText } from "./caps.js";
import { fileFact, hideVersions } from "./download.js";
import { hideLogs, logsFact, logsSeeStatus } from "./logs.js";
import { eventEntry, noHistory, olderShown, showHistory, takeLatest } from "./events.js";
import { canHandOn, openHandOver, openHandOverAll } from "./handover.js";
import { showStopAll } from "./stop_all.js";
import {
  clearOffersError,
  hideNotebookOffer,
  openOffer,
  refreshOfferTimes,
  refreshOffersToMe,
  showNotebookOffer,
} from "./offers.js";
import {
  $,
  announce,
  focusHeading,
  formatTime,
  h,
  isBusy,
  keepError,
  markBusy,
  refreshTimes,
  setText,
  showError,
  statusBadge,
} from "./dom.js";
import {
  Poller,
  TRANSITIONAL,
  absorb,
  canAdminister,
  canManage,
  configName,
  memberLabel,
  state,
  teamName,
} from "./store.js";

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
//
// One page at a time, newest first, with the API's keyset pagination: a
// page is fetched with the `marker` the page before it handed out, so
// `markers[i]` fetches page i (markers[0] is none). Polling re-reads only the
// page on screen (one request of `size` notebooks), whatever the
// organization holds. The API's markers only go forward; Previous goes back
// to a marker already seen. The page, its size and the team filter survive
// a visit to a notebook (they live here, not in the URL; a reload starts on
// page 1).

export const PAGE_SIZES = [25, 50, 100];

const list = {
  visit: 0, // bumped on enter and leave: answers for an earlier visit are dropped
  poller: null,
  size: 50,
  teamId: "", // "" = every notebook the member can see
  ownerId: "", // "" = anyone's; not with a team (the team's list takes no owner)
  status: "", // a key of STATUS_FILTERS; "" = every status
  q: "", // a name search; "" = any name
  typing: null, // the search's debounce timer
  markers: [null],
  index: 0,
  next: null, // the marker the page on screen gave for the page after it
  refocusRow: null, // after a delete: the row position to put focus on
  notice: null, // what the next visit says first (a notebook that went away)
};

// A short notice above the list (not an error: nothing failed that the member
// can retry), also announced to screen readers. null removes it.
function showNotice(message) {
  const el = $("#notebooks-notice");
  el.textContent = message || "";
  el.hidden = !message;
  if (message) announce(message);
}

// The notebook on screen (its page or the open view) answered 404: deleted
// elsewhere, or no longer shared with this member (the API does not say
// which). Its page has nothing left to show or do: back to the list, which
// says so. The history entry is replaced, so Back does not return to it.
export function notebookGone(name) {
  list.notice = `${name ? `“${name}”` : "That notebook"} no longer exists, or is no longer shared with you.`;
  // A dialog about it (edit, delete) would only fail now.
  for (const dialog of [$("#edit-dialog"), $("#delete-dialog"), $("#confirm-dialog"), $("#owner-dialog")]) {
    if (dialog.open) dialog.close();
  }
  location.replace("#/notebooks");
}

// The list's Status filter: what the API's `?status=` is asked for each.
const STATUS_FILTERS = {
  up: { statuses: "starting,running,idle,detached,stopping", none: "running now" },
  stopped: { statuses: "stopped", none: "stopped" },
  failed: { statuses: "failed", none: "failed" },
};

function resetPaging() {
  list.markers = [null];
  list.index = 0;
  list.next = null;
}

// A reason over several lines (a process's log tail) told in the list by
// its head and its last line, where a traceback says what went wrong: cut
// to four lines, it showed "Traceback (most recent call last): File …".
// The notebook's own page shows all of it.
export function briefReason(text) {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  if (lines.length <= 1) return text;
  const cut = lines[0].indexOf(": ");
  const head = cut < 0 ? lines[0] : lines[0].slice(0, cut + 1);
  return `${head} … ${lines[lines.length - 1]}`;
}

// When the platform will stop it by itself, as the reconciler decides
// (docs/reconciler.md): idle, its idle timeout after its last activity;
// detached (a cell runs with nobody there), or idle with its kernel's
// activity unknown (the status says so), its detached timeout after. Null
// when no timeout applies.
// The organization's caps apply as the reconciler applies them (caps.js).
export function autoStopAt(nb) {
  const idle = capped(nb.idleTimeoutSeconds, caps.idle);
  const detached = capped(nb.detachedTimeoutSeconds, caps.detached);
  let timeout = 0;
  if (nb.status === "idle") timeout = nb.statusMessage ? detached : idle;
  if (nb.status === "detached") timeout = detached;
  if (!timeout || !nb.lastActiveAt) return null;
  return new Date(Date.parse(nb.lastActiveAt) + timeout * 1000).toISOString();
}

function rowFor(nb, ctx) {
  const message = nb.statusMessage
    ? h("div", { class: `status-message small status-text-${nb.status}`, title: nb.statusMessage, text: briefReason(nb.statusMessage) })
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
    h("td", { "data-label": "Last active", class: "when" }, formatTime(nb.lastActiveAt)),
    h("td", { class: "row-actions" }, actionButtons(nb, ctx, { compact: true })),
  );
}

function renderPager(total, shown) {
  const count = `${total.toLocaleString()} notebook${total === 1 ? "" : "s"}`;
  const single = list.index === 0 && !list.next;
  const pages = Math.max(list.index + 1, Math.ceil(total / list.size));
  setText($("#page-info"), single ? count : `Page ${list.index + 1} of ${pages} · ${count}`);
  const prev = $("#page-prev");
  const next = $("#page-next");
  const first = $("#page-first");
  const focused = document.activeElement;
  $("#notebooks-pager").hidden = shown === 0;
  prev.hidden = next.hidden = single;
  first.hidden = list.index < 2;
  prev.disabled = list.index === 0;
  next.disabled = !list.next;
  // A pager button that just became disabled or hidden would drop focus to
  // the page's body: keep it on the pager.
  if ([prev, next, first].includes(focused) && (focused.disabled || focused.hidden)) {
    const other = [next, prev].find((b) => !b.disabled && !b.hidden);
    if (other) other.focus();
    else focusHeading($("#view-notebooks"));
  }
}

async function refreshList() {
  const errorEl = $("#notebooks-error");
  const asked = { index: list.index, teamId: list.teamId, size: list.size, status: list.status, ownerId: list.ownerId, q: list.q };
  const visit = list.visit;
  let page;
  try {
    page = await api.listNotebooks({
      limit: list.size,
      marker: list.markers[list.index],
      teamId: list.teamId,
      owner: list.ownerId,
      status: STATUS_FILTERS[list.status]?.statuses,
      q: list.q,
    });
  } catch (err) {
    if (visit !== list.visit) return false; // left meanwhile
    if (asked.teamId && asked.teamId === list.teamId && refused(err)) {
      // Removed from that team (or it was deleted) since the filter was set.
      await teamFilterGone(asked.teamId);
      return false;
    }
    // Polled again the same way, the same failure is not announced again.
    keepError(errorEl, err, "Could not load notebooks");
    errorEl.dataset.source = "load";
    if (err.retryAfterMs) list.poller.backoff(err.retryAfterMs); // a 429 or 503 says when
    return false;
  }
  if (visit !== list.visit) return false; // left meanwhile
  // Paged or filtered meanwhile: this answer is for a page no longer asked for.
  if (
    asked.index !== list.index ||
    asked.teamId !== list.teamId ||
    asked.size !== list.size ||
    asked.status !== list.status ||
    asked.ownerId !== list.ownerId ||
    asked.q !== list.q
  ) {
    return false;
  }
  // A failed poll's message goes once polling works again; an action's stays.
  if (errorEl.dataset.source === "load") {
    showError(errorEl, null);
    delete errorEl.dataset.source;
  }
  absorb(page.included);
  const notebooks = page.items.map((item) => joinItem(item, page.included)).filter(Boolean);
  if (notebooks.length === 0 && list.index > 0) {
    // Everything on this page went (deleted elsewhere): show the one before.
    list.index -= 1;
    list.markers.length = list.index + 1;
    list.poller.now();
    return false;
  }
  list.next = page.marker || null;
  list.markers.length = list.index + 1;
  const ctx = {
    errorEl,
    changed: (change) => {
      if (change?.deleted) {
        const rows = [...$("#notebooks-body").rows];
        list.refocusRow = rows.findIndex((r) => r.dataset.notebookId === change.deleted);
      }
      return list.poller.now();
    },
  };
  const body = $("#notebooks-body");
  // The row holding focus may leave the page (it no longer fits the Status
  // filter, or someone else deleted it): focus then goes where a deleted
  // row's does, not to the page's body.
  const focusedRow = [...body.rows].findIndex((r) => r.contains(document.activeElement));
  // Not to the heading when the focused row went: refocusRow below finds its place.
  preserveFocus(
    body,
    () => {
      body.replaceChildren(...notebooks.map((nb) => rowFor(nb, ctx)));
    },
    { fallback: false },
  );
  if (focusedRow >= 0 && !body.contains(document.activeElement) && list.refocusRow === null) {
    list.refocusRow = focusedRow;
  }
  if (list.refocusRow !== null) {
    // The deleted row's button had focus: move it to the row that took its
    // place (or the last one, or the heading), not to the page's body.
    const links = [...body.querySelectorAll(".nb-link")];
    const target = links[Math.min(list.refocusRow, links.length - 1)];
    list.refocusRow = null;
    if (!document.querySelector("dialog[open]")) {
      if (target) target.focus();
      else focusHeading($("#view-notebooks"));
    }
  }
  notebooks.forEach(noteStatus);
  const empty = $("#notebooks-empty");
  const filtered = STATUS_FILTERS[list.status];
  const whose = list.ownerId ? ` of ${ownerName(list.ownerId)}` : "";
  empty.textContent = list.q
    ? `No notebook${list.teamId ? ` shared with ${teamName(list.teamId)}` : whose}${filtered ? ` that is ${filtered.none}` : ""} has “${list.q}” in its name.`
    : filtered
    ? `No notebook${list.teamId ? ` shared with ${teamName(list.teamId)}` : whose} is ${filtered.none}.`
    : list.teamId
      ? `No notebooks are shared with ${teamName(list.teamId)}.`
      : list.ownerId
        ? `No notebooks${whose} that you can see.`
        : "No notebooks yet. Create one to get started.";
  empty.hidden = notebooks.length > 0;
  $("#notebooks-table").hidden = notebooks.length === 0;
  renderPager(page.total ?? notebooks.length, notebooks.length);
  refreshOffersToMe(offersContext(visit));
  refreshOfferTimes();
  return notebooks.some((nb) => TRANSITIONAL.has(nb.status));
}

// The list's "Offered to you" (offers.js): an accepted notebook joins the list.
const offersContext = (visit) => ({ current: () => visit === list.visit, changed: () => list.poller.now() });

function goToPage(index) {
  if (index < 0) return; // Previous twice before page 1 came back
  if (index === list.index + 1) {
    if (!list.next) return;
    list.markers[index] = list.next;
  }
  list.index = index;
  list.markers.length = index + 1;
  list.next = null;
  showNotice(null);
  announce(`Page ${index + 1}`);
  list.poller.now();
}

// "yours" for the signed-in member, else their name.
const ownerName = (id) => (id === state.me?.id ? "yours" : memberLabel(id));

// The owner filter: anyone, the member, or a member People asked for
// (`showNotebooksOf`).
function fillOwnerFilter() {
  const select = $("#list-owner");
  const me = state.me?.id;
  const other = list.ownerId && list.ownerId !== me ? list.ownerId : null;
  select.replaceChildren(
    h("option", { value: "", text: "Anyone" }),
    h("option", { value: me || "", text: "Me" }),
    ...(other ? [h("option", { value: other, text: memberLabel(other) })] : []),
  );
  select.value = list.ownerId;
  showOwnerActions();
}

// What org admins do to everything the Owner filter names: hand it on, stop it.
function showOwnerActions() {
  showHandAll();
  showStopAll(list.ownerId, list.teamId, (count) => {
    showNotice(count ? `${count} notebook${count === 1 ? "" : "s"} stopping.` : "Nothing was running.");
    list.poller.now();
    $("#stop-all").focus();
  });
}

// "Hand all on…" beside the Owner filter when it names another member (org
// admins): someone leaving owns many notebooks, handed on at once.
function showHandAll() {
  const button = $("#hand-all");
  const other = list.ownerId && list.ownerId !== state.me?.id ? list.ownerId : null;
  button.hidden = !(other && canHandOn());
  if (button.hidden) return;
  button.setAttribute("aria-label", `Hand every notebook of ${memberLabel(other)} on`);
  button.onclick = (ev) =>
    openHandOverAll(other, ev.currentTarget, (count, name) => {
      showNotice(`${count} notebook${count === 1 ? "" : "s"} of ${memberLabel(other)} handed on to ${name}.`);
      list.poller.now();
      button.focus();
    });
}

// People's "Notebooks" on a member's row: the list of what they own.
export function showNotebooksOf(memberId) {
  list.ownerId = memberId;
  list.teamId = "";
  list.status = "";
  resetPaging();
  location.hash = "#/notebooks";
}

// The team filter offers the teams whose notebook list the API gives this
// member: every team to an organization admin, else the member's own.
async function fillTeamFilter() {
  const select = $("#list-team");
  const visit = list.visit;
  try {
    const { items } = await api.listTeams();
    if (visit !== list.visit) return; // left meanwhile
    items.forEach((t) => state.teams.set(t.id, t));
    const mine = new Set((state.me?.teams || []).map((t) => t.teamId));
    const offered = state.me?.organizationAdmin ? items : items.filter((t) => mine.has(t.id));
    if (list.teamId && !offered.some((t) => t.id === list.teamId)) {
      list.teamId = "";
      resetPaging();
    }
    select.replaceChildren(
      h("option", { value: "", text: "Any (all you can see)" }),
      ...offered.map((t) => h("option", { value: t.id, text: t.name })),
    );
    select.value = list.teamId;
    $("#list-team-field").hidden = offered.length === 0;
  } catch (err) {
    if (visit === list.visit) showError($("#notebooks-error"), err, "Could not load teams");
  }
}

// The list filtered by a team answered 403 or 404: the member left that team
// (or it was deleted) since. Show every notebook again, offer only the teams
// the member is now in (their roles read afresh), and say why.
async function teamFilterGone(teamId) {
  const visit = list.visit;
  const name = teamName(teamId);
  list.teamId = "";
  resetPaging();
  $("#list-team").value = "";
  showNotice(`You no longer have access to the notebooks of team ${name}: showing all you can see.`);
  try {
    const me = await api.me();
    if (state.me && me.id === state.me.id) state.me = me;
  } catch {
    // The old roles stay; fillTeamFilter still drops a team that is gone.
  }
  if (visit !== list.visit) return; // left meanwhile: the next visit fills the filter
  await fillTeamFilter();
  list.poller.now(); // the unfiltered list, at once
}

export const listView = {
  el: () => $("#view-notebooks"),
  enter() {
    list.visit += 1;
    const errorEl = $("#notebooks-error");
    showError(errorEl, null);
    showNotice(list.notice);
    list.notice = null;
    $("#new-notebook").onclick = (ev) =>
      openCreate(ev.currentTarget, (created) => {
        // The newest notebook is first on page 1 (of the team filter, if
        // it was shared with that team).
        const teamIds = created.item.teamIds || [];
        if (list.teamId && !teamIds.includes(list.teamId)) {
          list.teamId = "";
          $("#list-team").value = "";
        }
        if (list.ownerId && list.ownerId !== state.me?.id) {
          list.ownerId = ""; // it is the member's own
          $("#list-owner").value = "";
          showOwnerActions();
        }
        if (list.status && list.status !== "stopped") {
          list.status = ""; // a new notebook is stopped: show it
          $("#list-status").value = "";
        }
        const named = created.included?.notebooks?.find((n) => n.id === created.item.notebookId)?.name ?? "";
        if (list.q && !named.toLowerCase().includes(list.q.toLowerCase())) {
          list.q = ""; // a search it does not match would hide it
          $("#list-search").value = "";
        }
        resetPaging();
        list.poller.now();
        // Land on the new notebook's row so keyboard users can start it.
        setTimeout(() => {
          const link = document.querySelector(`[data-focus-key="${CSS.escape(created.item.notebookId)}:link"]`);
          if (link) link.focus();
        }, 300);
      });
    const size = $("#list-size");
    size.replaceChildren(...PAGE_SIZES.map((n) => h("option", { value: String(n), text: String(n) })));
    size.value = String(list.size);
    size.onchange = () => {
      showNotice(null);
      list.size = Number(size.value);
      resetPaging();
      list.poller.now();
    };
    // The name search, 300 ms after the last keystroke (not a request per key).
    const search = $("#list-search");
    search.value = list.q;
    search.oninput = () => {
      clearTimeout(list.typing);
      list.typing = setTimeout(() => {
        const q = search.value.trim();
        if (q === list.q) return;
        showNotice(null);
        list.q = q;
        resetPaging();
        list.poller.now();
      }, 300);
    };
    const status = $("#list-status");
    status.value = list.status;
    status.onchange = () => {
      showNotice(null);
      list.status = status.value;
      resetPaging();
      list.poller.now();
    };
    // A team's list takes no owner: choosing one filter clears the other.
    $("#list-team").onchange = (ev) => {
      showNotice(null);
      list.teamId = ev.currentTarget.value;
      if (list.teamId) list.ownerId = $("#list-owner").value = "";
      showOwnerActions();
      resetPaging();
      list.poller.now();
    };
    fillOwnerFilter();
    $("#list-owner").onchange = (ev) => {
      showNotice(null);
      list.ownerId = ev.currentTarget.value;
      showOwnerActions();
      if (list.ownerId) list.teamId = $("#list-team").value = "";
      resetPaging();
      list.poller.now();
    };
    $("#page-next").onclick = () => goToPage(list.index + 1);
    $("#page-prev").onclick = () => goToPage(list.index - 1);
    $("#page-first").onclick = () => goToPage(0);
    list.poller = new Poller(refreshList, $("#notebooks-table"));
    list.poller.start();
    clearOffersError();
    refreshOffersToMe({ force: true, ...offersContext(list.visit) });
    fillTeamFilter();
  },
  leave() {
    list.visit += 1;
    clearTimeout(list.typing); // a search typed just before leaving is not run
    list.poller?.stop();
  },
  refresh() {
    list.poller?.now();
  },
};

// ---- one notebook --------------------------------------------------------

// `visit` counts entries to and exits from the view: an answer for an earlier
// visit (another notebook, or this one before leaving) is dropped.
const detail = {
  id: null,
  visit: 0,
  poller: null,
  nb: null,
  admin: undefined,
  teamsKey: null,
  historyKey: null,
  historyReadAt: 0,
  historyReads: 0,
  history: noHistory(),
};

// The history shows the latest changes; the API pages the rest.
const HISTORY_SHOWN = 20;
const HISTORY_MAX_AGE_MS = 30_000;

function fact(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

async function refreshDetail() {
  const errorEl = $("#nb-error");
  const { id, visit } = detail;
  let nb;
  try {
    // The caps, read again at most every 30 s, say which timeout applies.
    [nb] = await Promise.all([loadNotebook(id), refreshCaps()]);
  } catch (err) {
    if (visit !== detail.visit) return false; // left meanwhile
    if (notFound(err)) {
      // Deleted elsewhere or no longer shared: nothing to poll or act on.
      detail.poller.stop();
      notebookGone(detail.nb?.name);
      return false;
    }
    keepError(errorEl, err, "Could not load the notebook");
    if (err.retryAfterMs) detail.poller.backoff(err.retryAfterMs);
    return false;
  }
  if (visit !== detail.visit) return false; // left (for another notebook) meanwhile: not this one's page
  detail.nb = nb;
  noteStatus(nb);
  $("#nb-title").textContent = nb.name;
  document.title = `${nb.name} · Notebooks`;
  $("#nb-status").replaceChildren(statusBadge(nb.status));
  // A live region: rewritten only when its words change, or every poll
  // would be announced again.
  const message = $("#nb-message");
  setText(message, nb.statusMessage || "");
  const cls = `status-message status-text-${nb.status}`;
  if (message.className !== cls) message.className = cls;
  $("#nb-description").textContent = nb.description || "";
  const ctx = {
    errorEl,
    changed: (change) => {
      if (change?.deleted) location.hash = "#/notebooks";
      else return detail.poller.now();
    },
  };
  const actions = $("#nb-actions");
  preserveFocus(actions, () => actions.replaceChildren(...actionButtons(nb, ctx)));
  // The history is read again when something it records moved (the status
  // or its message, a member's edit or hand-over: updatedAt, a share), and
  // at least every HISTORY_MAX_AGE_MS: changes that cancel out between two
  // polls (a share, then its team deleted) move none of those (an audit).
  const historyKey = [nb.status, nb.statusMessage || "", nb.updatedAt, [...nb.teamIds].sort().join()].join("|");
  if (detail.historyKey !== historyKey || Date.now() - detail.historyReadAt > HISTORY_MAX_AGE_MS) {
    detail.historyKey = historyKey;
    detail.historyReadAt = Date.now();
    refreshHistory();
    refreshOffer(nb); // every offer is in the history too
  }
  refreshTimes($("#nb-history")); // read again only when the status moves
  // The teams list (with sharing controls only for who may share) is read
  // again when access changed or the notebook's teams did (a share made
  // elsewhere), or it would contradict the facts below it.
  const admin = canAdminister(nb);
  const teamsKey = [...nb.teamIds].sort().join();
  if (detail.admin !== admin || detail.teamsKey !== teamsKey) {
    detail.admin = admin;
    detail.teamsKey = teamsKey;
    refreshTeams();
  }
  logsSeeStatus(nb);
  const stopsAt = autoStopAt(nb);
  const facts = $("#nb-facts");
  preserveFocus(facts, () => facts.replaceChildren(
    ...fact("Owner", memberLabel(nb.memberId), ...ownerButton(nb)),
    ...fact("Workload config", configName(nb.workloadConfigId)),
    ...fact("Teams", teamsText(nb.teamIds)),
    ...fact("Last active", formatTime(nb.lastActiveAt)),
    ...fact("Idle timeout", timeoutText(nb.idleTimeoutSeconds, caps.idle)),
    ...fact("Detached timeout", timeoutText(nb.detachedTimeoutSeconds, caps.detached)),
    ...(stopsAt ? fact("Stops by itself", formatTime(stopsAt), " unless someone opens it") : []),
    ...fact("Session", nb.sessionId || "—"),
    ...fact("File", ...fileFact(nb, errorEl)),
    ...(canManage(nb) ? fact("Logs", ...logsFact(nb)) : []),
    ...fact("Created", formatTime(nb.createdAt), ` by ${memberLabel(nb.createdBy)}`),
    ...fact("Updated", formatTime(nb.updatedAt), ` by ${memberLabel(nb.updatedBy)}`),
    ...fact("ID", h("code", { text: nb.id })),
  ));
  return TRANSITIONAL.has(nb.status);
}

// Beside the owner: org admins hand the notebook on (handover.js); its owner,
// when not one, offers it (offers.js). After either, the page is read again
// and focus goes back to the button.
function ownerButton(nb) {
  const [verb, label, text, open, after] = canHandOn()
    ? ["HandOn", `Hand ${nb.name} on to another owner`, "Hand on…", openHandOver, () => detail.poller.now()]
    : nb.memberId === state.me?.id
      ? ["Offer", `Offer ${nb.name} to a colleague`, "Offer to a colleague…", openOffer, offerChanged]
      : [];
  if (!verb) return [];
  const key = `${nb.id}:${verb}`;
  const done = async () => {
    await after(); // its owner, or its offer, and its history
    $(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
  };
  return [
    " ",
    h("button", {
      type: "button",
      class: "secondary small",
      "aria-label": label,
      dataset: { focusKey: key },
      text,
      onclick: (ev) => open(nb, ev.currentTarget, done),
    }),
  ];
}

// Its pending offer: to whom may withdraw it (its owner, org admins), and to
// its recipient, to answer it here.
function refreshOffer(nb) {
  const { visit } = detail;
  showNotebookOffer(nb, {
    mine: nb.memberId === state.me?.id || !!state.me?.organizationAdmin,
    me: state.me?.id,
    current: () => visit === detail.visit,
    changed: offerChanged,
  });
}

// An offer made or withdrawn: its history and the offer are read again.
function offerChanged() {
  detail.historyKey = null;
  return detail.poller.now();
}

async function refreshTeams() {
  const errorEl = $("#teams-error");
  const { id, visit } = detail;
  const admin = !!detail.admin;
  try {
    const [assigned, all] = await Promise.all([api.notebookTeams(id), api.listTeams()]);
    if (visit !== detail.visit) return; // left meanwhile
    absorb(assigned.included);
    all.items.forEach((t) => state.teams.set(t.id, t));
    // Items are team objects (with `id`), or normalized `{teamId}` refs.
    const ids = assigned.items.map((t) => {
      if (t.id) state.teams.set(t.id, t);
      return t.id || t.teamId;
    });
    // What is drawn now: a poll that finds the same teams need not read them
    // again (a second redraw right after an add or remove moved the focus).
    detail.teamsKey = [...ids].sort().join();
    const ul = $("#nb-teams");
    preserveFocus(ul, () =>
      ul.replaceChildren(
        ...(ids.length
          ? ids.map((id) =>
              h(
                "li",
                {},
                h("span", { text: teamName(id) }),
                admin ? removeButton(id) : null,
              ),
            )
          : [h("li", { class: "muted", text: "Not shared with any team." })]),
      ),
    );
    const available = all.items.filter((t) => !ids.includes(t.id));
    const select = $("#add-team-select");
    select.replaceChildren(...available.map((t) => h("option", { value: t.id, text: t.name })));
    $("#add-team-form").hidden = !admin || available.length === 0;
    $("#teams-readonly").hidden = admin;
  } catch (err) {
    if (visit === detail.visit) showError(errorEl, err, "Could not load teams");
  }
}

function removeButton(teamId) {
  const button = h("button", {
    type: "button",
    class: "danger-outline small",
    "aria-label": `Remove team ${teamName(teamId)}`,
    dataset: { focusKey: `team:${teamId}` },
    text: "Remove",
    onclick: (ev) => confirmRemoveTeam(teamId, ev.currentTarget),
  });
  return button;
}

// After a team was added or removed: the add form if it still shows, else
// (the last team was added, the form went with the focus on it) the list's
// heading, never the page's body.
function focusTeams({ preferForm }) {
  const form = $("#add-team-form");
  const active = document.activeElement;
  const lost = !active || active === document.body || form.contains(active);
  if (!form.hidden && preferForm) $("#add-team-select").focus();
  else if (form.hidden && (lost || preferForm)) {
    const heading = $("#teams-title");
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

async function refreshHistory() {
  const errorEl = $("#history-error");
  const { id, visit } = detail;
  const read = ++detail.historyReads; // a later read's answer wins, whichever comes first
  let page;
  try {
    page = await api.notebookEvents(id, HISTORY_SHOWN);
  } catch (err) {
    if (visit !== detail.visit) return; // left meanwhile
    showError(errorEl, err, "Could not load the history");
    detail.historyKey = null; // try again on the next poll
    return;
  }
  if (visit !== detail.visit || read !== detail.historyReads) return; // left, or read again
  showError(errorEl, null);
  absorb(page.included); // who acted, by name
  detail.history = takeLatest(detail.history, page);
  renderHistory();
}

// The latest entries, then the older ones the member asked for ("Show
// older": the API's marker, by event id, so new entries never shift them).
function renderHistory() {
  // `older` follows `latest` without overlap: it is kept only while the
  // latest page is the same (refreshHistory), and a page is added only then (showOlder).
  showHistory($("#nb-history"), detail.history, {
    entry: (e) => eventEntry(e),
    empty: "Nothing yet: it has never been started or changed.",
    more: $("#history-more"),
    older: $("#history-older"),
  });
}

async function showOlder(ev) {
  const { id, visit, history } = detail;
  const page = await attempt(ev.currentTarget, $("#history-error"), "Could not load older entries", () =>
    api.notebookEvents(id, HISTORY_SHOWN, history.marker),
  );
  // Read again meanwhile (something new came): this page may not follow
  // the latest one shown now, so it is dropped (a review).
  if (page === REFUSED || visit !== detail.visit || detail.history !== history) return;
  absorb(page.included);
  detail.history.older.push(...page.items);
  detail.history.marker = page.marker || null;
  renderHistory();
  olderShown(page.items.length, $("#history-older"), $("#history-title"));
}

// Whether the member sees `nb` only through the team `teamId` (not its
// owner, not an org admin, in no other team it is shared with).
function onlyThrough(nb, teamId) {
  const me = state.me;
  if (!me || nb.memberId === me.id || me.organizationAdmin) return false;
  const mine = new Set((me.teams || []).map((t) => t.teamId));
  return (nb.teamIds || []).every((t) => t === teamId || !mine.has(t));
}

// Asked first: unsharing ends the team's members' access and their open
// sessions at once, the asker's own too when it came through that team.
// The dialog's button is busy while the DELETE is on its way (a double
// click sends one); a refusal stays in the dialog.
function confirmRemoveTeam(teamId, trigger) {
  const nb = detail.nb;
  if (!nb) return;
  const { visit } = detail;
  const team = teamName(teamId);
  const losing = onlyThrough(nb, teamId);
  const yours = losing
    ? " That includes you: this notebook is shared with you through this team only, and you cannot share it back."
    : " They can be given access again by sharing it with the team again.";
  confirmThen({
    trigger,
    title: `Remove team ${team}?`,
    text: `Members of ${team} lose access to ${nb.name}, and their open sessions of it end now.${yours}`,
    action: "Remove team",
    run: () => api.removeNotebookTeam(nb.id, teamId),
    after: async () => {
      announce(`Team ${team} removed`);
      if (visit !== detail.visit) return; // left meanwhile: that visit reads its own
      if (losing) return notebookGone(nb.name); // nothing left to show this member
      await refreshTeams();
      detail.poller.now();
      focusTeams({ preferForm: true });
    },
  });
}

// Share with the team picked; the button stays busy (and further submits
// are ignored) until the API answered.
async function addTeam(ev) {
  ev.preventDefault();
  const submit = ev.currentTarget.querySelector("button[type=submit]");
  if (isBusy(submit)) return;
  const { visit } = detail;
  const teamId = $("#add-team-select").value;
  const errorEl = $("#teams-error");
  markBusy(submit, true);
  showError(errorEl, null);
  try {
    await api.addNotebookTeams(detail.id, [teamId]);
    announce(`Team ${teamName(teamId)} added`);
  } catch (err) {
    showError(errorEl, err, "Could not add the team");
  }
  if (visit !== detail.visit) return; // left meanwhile: the next visit resets the button
  await refreshTeams();
  markBusy(submit, false);
  detail.poller.now();
  focusTeams({ preferForm: false });
}

export const detailView = {
  el: () => $("#view-notebook"),
  enter({ id }) {
    detail.visit += 1;
    detail.id = id;
    showError($("#nb-error"), null);
    showError($("#teams-error"), null);
    detail.nb = null;
    detail.admin = undefined;
    detail.teamsKey = null;
    // Nothing of the notebook shown before stays while this one loads.
    $("#nb-title").textContent = "Notebook";
    detail.historyKey = null;
    detail.historyReadAt = 0;
    detail.history = noHistory();
    showError($("#history-error"), null);
    $("#history-more").hidden = true;
    $("#history-older").hidden = true;
    $("#history-older").onclick = showOlder;
    for (const sel of ["#nb-status", "#nb-actions", "#nb-facts", "#nb-teams", "#nb-history"]) $(sel).replaceChildren();
    for (const sel of ["#nb-message", "#nb-description"]) $(sel).textContent = "";
    hideNotebookOffer();
    hideVersions();
    hideLogs();
    $("#add-team-form").hidden = true;
    $("#teams-readonly").hidden = true;
    const addSubmit = $("#add-team-form button[type=submit]");
    markBusy(addSubmit, false); // not still busy from an add asked on an earlier visit
    $("#add-team-form").onsubmit = addTeam;
    detail.poller = new Poller(refreshDetail);
    detail.poller.start();
  },
  leave() {
    detail.visit += 1; // answers still on their way are dropped
    detail.poller?.stop();
    hideLogs(); // and an ask's wait for a worker's read
  },
  refresh() {
    detail.poller?.now();
  },
};
