// Handing a notebook on to another member (PATCH `memberId`): its owner or
// an org admin does it from the notebook's page, when someone leaves or the
// work moves. Org admins find the new owner by name or email (GET
// /members?q=); an owner who is not one cannot list members and types the
// new owner's member id, as a team admin adding a member does.

import { REFUSED, attempt, openDialog } from "./actions.js";
import { api } from "./api.js";
import { $, announce, h, showError } from "./dom.js";
import { absorb, accessTo, memberLabel, state } from "./store.js";

const SEARCH_SHOWN = 20;
const SEARCH_DELAY_MS = 300;
const MEMBER_ID = /^[A-Z0-9]{1,20}$/;

// Who may hand it on: the API allows its owner and org admins.
export const canHandOn = (nb) => ["owner", "org_admin"].includes(accessTo(nb));

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

// The member id chosen or typed, or null with the reason shown.
function chosen(admin, error) {
  if (admin) {
    const id = $("#owner-member").value;
    if (id) return id;
    showError(error, { detail: "Choose the new owner first." });
    $("#owner-search").focus();
    return null;
  }
  const input = $("#owner-id");
  const id = input.value.trim().toUpperCase();
  if (MEMBER_ID.test(id)) return id;
  const what = id.includes("@") ? "That is an email address; a" : "A";
  showError(error, {
    detail: id
      ? `${what} member id is letters and digits, like ${state.me.id}. Ask them for theirs: it is at the top of their own People page.`
      : "Type the new owner's member id first.",
  });
  input.focus();
  return null;
}

// `done(stillVisible, name)` runs after the hand-over: the notebook may no longer
// be the caller's to see (an owner who is in none of its teams).
export function openHandOver(nb, trigger, done) {
  const dialog = $("#owner-dialog");
  const error = $("#owner-error");
  const submit = $("#owner-submit");
  const admin = !!state.me?.organizationAdmin;
  showError(error, null);
  $("#owner-form").reset();
  $("#owner-title").textContent = `Hand “${nb.name}” on`;
  const kept = accessTo({ ...nb, memberId: null });
  $("#owner-text").textContent =
    `It becomes the new owner's: they open it to edit, and it counts toward their running notebooks. ` +
    (kept
      ? "You keep your access to it."
      : "You lose access to it: it is in none of your teams.");
  $("#owner-search-field").hidden = !admin;
  $("#owner-member-field").hidden = !admin;
  $("#owner-id-field").hidden = admin;
  const finish = openDialog(dialog, trigger);
  if (admin) {
    $("#owner-member").replaceChildren(h("option", { value: "", text: "Loading members…" }));
    search(nb, "");
    $("#owner-search").oninput = (ev) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => search(nb, ev.target.value.trim()), SEARCH_DELAY_MS);
    };
    $("#owner-search").focus();
  } else {
    $("#owner-id").focus();
  }
  $("#owner-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const memberId = chosen(admin, error);
    if (!memberId) return;
    const handed = await attempt(submit, error, "Could not hand it on", () =>
      api.updateNotebook(nb.id, { memberId }),
    );
    if (handed === REFUSED) return;
    finish();
    absorb(handed.included); // the new owner's name, for one who could not list members
    const name = memberLabel(memberId);
    announce(`${nb.name} handed on to ${name}`);
    done(kept !== null, name);
  };
}
