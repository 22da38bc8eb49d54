// Handing a notebook on to another member (PATCH `memberId`): an org admin
// does it from the notebook's page, when someone leaves or the work moves
// (the API allows no one else: the notebook's cost moves with it). The new
// owner is found by name or email (GET /members?q=).

import { REFUSED, attempt, openDialog } from "./actions.js";
import { api } from "./api.js";
import { $, announce, h, showError } from "./dom.js";
import { absorb, memberLabel, state } from "./store.js";

const SEARCH_SHOWN = 20;
const SEARCH_DELAY_MS = 300;

export const canHandOn = () => !!state.me?.organizationAdmin;

let searchTimer = null;
let searched = 0; // the latest search: an earlier one's late answer is dropped

async function search(nb, q) {
  const select = $("#owner-member");
  const error = $("#owner-error");
  const asked = ++searched;
  try {
    const { items } = await api.listMembers({ limit: SEARCH_SHOWN, q: q || undefined });
    if (asked !== searched) return;
    items.forEach((m) => state.members.set(m.id, m));
    const others = items.filter((m) => m.id !== nb.memberId);
    select.replaceChildren(
      h("option", { value: "", text: others.length ? "Choose a member" : "No other member matches" }),
      ...others.map((m) => h("option", { value: m.id, text: `${m.name} (${m.email})` })),
    );
  } catch (err) {
    if (asked === searched) showError(error, err, "Could not look members up");
  }
}

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
  select.replaceChildren(h("option", { value: "", text: "Loading members…" }));
  search(nb, "");
  const input = $("#owner-search");
  input.oninput = () => {
    // What was chosen belongs to the last answer: cleared now, so Enter
    // before the new one comes hands it to nobody (an audit handed it to
    // the member chosen before the search).
    searched += 1;
    select.replaceChildren(h("option", { value: "", text: "Searching…" }));
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(nb, input.value.trim()), SEARCH_DELAY_MS);
  };
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
