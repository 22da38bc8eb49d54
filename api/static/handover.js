// Handing notebooks on to another member: one (PATCH `memberId`, from its
// page) or every one a member owns (POST /members/{id}/handover, from the
// list filtered by that owner), when someone leaves or the work moves. Org
// admins only (the API allows no one else: a notebook's cost moves with it).
// The new owner is found by name or email (member_search.js).

import { REFUSED, attempt, openDialog } from "./actions.js";
import { api } from "./api.js";
import { $, announce, setBusy, showError } from "./dom.js";
import { memberSearch } from "./member_search.js";
import { absorb, isDisabled, memberLabel, state } from "./store.js";

export const canHandOn = () => !!state.me?.organizationAdmin;

// What becomes of the previous owner, said before the hand-over.
function afterwards(ownerId, shared) {
  if (ownerId === state.me?.id) return "You keep your access as an organization admin.";
  if (isDisabled(state.members.get(ownerId))) return "";
  return `${memberLabel(ownerId)} keeps access only through the teams ${shared} with.`;
}

// Each opening of the dialog: an answer for an earlier one is dropped.
let opened = 0;

// The dialog (`becomes`, `shared`: its words for one notebook or every
// one): `send(memberId)` hands on, and its answer goes to
// `done(answer, name)` with the new owner's name.
function handOverDialog({ title, becomes, shared, ownerId, trigger, send, done }) {
  const dialog = $("#owner-dialog");
  const error = $("#owner-error");
  const submit = $("#owner-submit");
  const cancel = dialog.querySelector("[data-close]");
  const select = $("#owner-member");
  const opening = ++opened;
  showError(error, null);
  setBusy(submit, false);
  cancel.disabled = false;
  $("#owner-form").reset();
  $("#owner-title").textContent = title;
  $("#owner-text").textContent =
    `${becomes} the new owner's: they open it to edit, and it counts toward their running notebooks. ` +
    afterwards(ownerId, shared);
  const finish = openDialog(dialog, trigger);
  // Not closed while its answer is on its way (Escape, Cancel): closed, it
  // looked cancelled while the hand-over went on (a review).
  dialog.oncancel = (ev) => {
    if (submit.disabled) ev.preventDefault();
  };
  const input = $("#owner-search");
  memberSearch(input, select, {
    limit: 20,
    offered: (m) => m.id !== ownerId,
    none: () => "No other member matches",
  })("");
  input.focus();
  $("#owner-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const memberId = select.value;
    if (!memberId) {
      showError(error, { detail: "Choose the new owner first." });
      input.focus();
      return;
    }
    cancel.disabled = true;
    const answer = await attempt(submit, error, "Could not hand it on", () => send(memberId));
    if (opening !== opened) return; // another opening's: notebookGone closed this one meanwhile
    cancel.disabled = false;
    if (answer === REFUSED) {
      select.focus(); // the button was busy (disabled) meanwhile: focus must not drop to the page
      return;
    }
    finish();
    absorb(answer.included);
    done(answer, memberLabel(memberId));
  };
}

// One notebook; `done(name)` after.
export function openHandOver(nb, trigger, done) {
  handOverDialog({
    title: `Hand “${nb.name}” on`,
    becomes: "It becomes",
    shared: "it is shared",
    ownerId: nb.memberId,
    trigger,
    send: (memberId) => api.updateNotebook(nb.id, { memberId }),
    done: (_, name) => {
      announce(`${nb.name} handed on to ${name}`);
      done(name);
    },
  });
}

// Every notebook `ownerId` owns, whatever the list's filters show (the
// title says how many, once counted); `done(count, name)` after.
export function openHandOverAll(ownerId, trigger, done) {
  const opening = opened + 1; // the dialog's opening below
  api
    .ownedNotebookCount(ownerId)
    .then((n) => {
      if (opening !== opened) return; // closed and opened again since
      $("#owner-title").textContent = `Hand all ${n} notebook${n === 1 ? "" : "s"} of ${memberLabel(ownerId)} on`;
    })
    .catch(() => {}); // the title without the number
  handOverDialog({
    title: `Hand every notebook of ${memberLabel(ownerId)} on`,
    becomes: "Each becomes",
    shared: "each is shared",
    ownerId,
    trigger,
    send: (memberId) => api.handOnAll(ownerId, memberId),
    done: (answer, name) => {
      announce(`${answer.handedOn} notebooks handed on to ${name}`);
      done(answer.handedOn, name);
    },
  });
}
