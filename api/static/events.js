// History entries as the console shows them, on a notebook's page and in the
// organization's activity (activity.js): one line each, and the rule for
// keeping the older entries a member asked for when the history is read again.

import { preserveFocus } from "./actions.js";
import { announce, formatTime, h, statusBadge } from "./dom.js";
import { memberLabel } from "./store.js";

export const actorLabel = (actor) => (actor === "reconciler" ? "the platform" : memberLabel(actor));

// One entry: when, `subject` (the activity names the notebook), a badge for
// a status change only (an edit or a share left it as it was), why, and who
// (`who`, a node, or the actor's name).
export function eventEntry(e, { subject = null, who = null } = {}) {
  return h(
    "li",
    { dataset: { eventId: e.id } },
    formatTime(e.createdAt),
    " ",
    subject,
    e.fromStatus !== e.toStatus ? statusBadge(e.toStatus) : null,
    h("span", { class: "history-reason", text: e.reason ? ` ${e.reason}` : "" }),
    h("span", { class: "muted small" }, " · ", who || actorLabel(e.actor)),
  );
}

// The latest page read again, against what is shown (`{latest, older,
// total, marker}`). Nothing new (the same entries, the same count): the
// older entries shown stay, in the same object, so a "Show older" on its way
// still fits. Something new: they are dropped, or they would leave a gap
// between the latest page and them (an audit), and a "Show older" on its way
// finds its history replaced. Every id is compared, not the newest alone:
// the activity's count stops at 10,000, and across notebooks an event can
// commit after one with a higher id (a review).
const ids = (items) => items.map((e) => e.id).join();
export function takeLatest(known, page) {
  if (page.total === known.total && ids(page.items) === ids(known.latest)) {
    known.latest = page.items;
    return known;
  }
  return { latest: page.items, older: [], total: page.total, marker: page.marker || null };
}

export const noHistory = () => ({ latest: [], older: [], total: 0, marker: null });

// A history as shown (`{latest, older, total, marker}`): its entries, each
// drawn by `entry`, or `empty` said when there are none (a focused link or
// button keeps focus across the redraw), then the count and "Show older"
// under them; `capped` once the API stops counting.
export function showHistory(list, history, { entry, empty, more, older, capped = false }) {
  const items = [...history.latest, ...history.older];
  preserveFocus(list, () =>
    list.replaceChildren(...(items.length ? items.map(entry) : [h("li", { class: "muted", text: empty })])),
  );
  showCount(more, older, items.length, history, capped);
}

// Under the entries: how many of how many ("more than" once the API stops
// counting), and "Show older" while the API has a marker for more.
function showCount(moreEl, olderButton, shown, { total, marker }, capped = false) {
  const left = capped || total > shown;
  moreEl.hidden = !left;
  const of = capped ? `more than ${total.toLocaleString()}` : total.toLocaleString();
  moreEl.textContent = `The latest ${shown} of ${of} entries.`;
  olderButton.hidden = !marker || !left;
}

// After "Show older" added `count` entries: said, and focus on the button
// for more, or (the last of them came) on the section's heading.
export function olderShown(count, olderButton, heading) {
  announce(`${count} older entries shown`);
  const target = olderButton.hidden ? heading : olderButton;
  if (olderButton.hidden) target.setAttribute("tabindex", "-1");
  target.focus();
}
