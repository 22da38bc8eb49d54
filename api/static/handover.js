// Handing a notebook on to another member (PATCH `memberId`): an org admin
// does it from the notebook's page, when someone leaves or the work moves
// (the API allows no one else: the notebook's cost moves with it). The new
// owner is found by name or email (GET /members?q=).

import { REFUSED, attempt, openDialog } from "./actions.js";
import { api } from "./api.js";
import { $, announce, showError } from "./dom.js";
import { memberSearch } from "./member_search.js";
import { absorb, memberLabel, state } from "./store.js";

export const canHandOn = () => !!state.me?.organizationAdmin;

// What becomes of the previous owner, said before the hand-over.
function afterwards(nb) {
  const owner = state.members.get(nb.memberId);
  if (nb.memberId === state.me?.id) return "You keep your access as an organization admin.";
  if (owner?.disabled || owner?.disabledAt) return "";
  return `${memberLabel(nb.memberId)} keeps access only through the teams it is shared with.`;
}

// `done(name)` runs after the hand-over, with the new owner's name.
export function openHandOver(nb, trigger, done) {
  const dialog = $("#owner-dialog");
  const error = $("#owner-error");
  const submit = $("#owner-submit");
  const select = $("#owner-member");
  showError(error, null);
  $("#owner-form").reset();
  $("#owner-title").textContent = `Hand “${nb.name}” on`;
  $("#owner-text").textContent =
    "It becomes the new owner's: they open it to edit, and it counts toward their running notebooks. " +
    afterwards(nb);
  const finish = openDialog(dialog, trigger);
  const input = $("#owner-search");
  memberSearch(input, select, {
    limit: 20,
    offered: (m) => m.id !== nb.memberId,
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
    const handed = await attempt(submit, error, "Could not hand it on", () =>
      api.updateNotebook(nb.id, { memberId }),
    );
    if (handed === REFUSED) {
      select.focus(); // the button was busy (disabled) meanwhile: focus must not drop to the page
      return;
    }
    finish();
    absorb(handed.included);
    const name = memberLabel(memberId);
    announce(`${nb.name} handed on to ${name}`);
    done(name);
  };
}
