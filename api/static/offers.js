// Offers of a notebook from its owner to a colleague (docs/api.md "Offering
// a notebook"): its owner makes one (the colleague named by email: only org
// admins may list members), the list shows the ones made to the member, to
// accept or decline, and a notebook's page its pending offer to its owner
// and org admins, to withdraw.

import { REFUSED, attempt, openDialog, preserveFocus } from "./actions.js";
import { api, notFound } from "./api.js";
import { $, announce, formatTime, h, isBusy, keepError, markBusy, refreshTimes, setBusy, showError } from "./dom.js";

// Each opening of the dialog: an answer for an earlier one is dropped.
let opened = 0;

// `done()` once offered (the page reads the offer again).
export function openOffer(nb, trigger, done) {
  const dialog = $("#offer-dialog");
  const error = $("#offer-error");
  const submit = $("#offer-submit");
  const cancel = dialog.querySelector("[data-close]");
  const input = $("#offer-email");
  const opening = ++opened;
  showError(error, null);
  setBusy(submit, false);
  cancel.disabled = false;
  $("#offer-form").reset();
  $("#offer-title").textContent = `Offer “${nb.name}” to a colleague`;
  const finish = openDialog(dialog, trigger);
  dialog.oncancel = (ev) => {
    if (submit.disabled) ev.preventDefault(); // not closed while its answer is on its way
  };
  // Offering it to someone else withdraws the pending offer: said first.
  const pending = onPage.offer?.notebookId === nb.id ? onPage.offer.toMember : null;
  const replaces = $("#offer-replaces");
  replaces.hidden = !pending;
  replaces.textContent = pending ? `It is offered to ${party(pending)} now: offering it to someone else withdraws that offer.` : "";
  input.focus();
  $("#offer-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const email = input.value.trim();
    if (!email) {
      showError(error, { detail: "Type your colleague's email address first." });
      input.focus();
      return;
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      showError(error, { detail: "That is not an email address: it looks like name@example.com." });
      input.focus();
      return;
    }
    cancel.disabled = true;
    const answer = await attempt(submit, error, "Could not offer it", () => api.offerNotebook(nb.id, email));
    if (opening !== opened) return; // the page was left and the dialog opened again
    cancel.disabled = false;
    if (answer === REFUSED) {
      input.focus();
      return;
    }
    finish();
    announce(`${nb.name} offered to ${party(answer.toMember)}`);
    done();
  };
}

// Read when the list is entered, after an answer, and otherwise at most this
// often while the list polls: offers come seldom, the list polls every 10 s.
const OFFERS_MAX_AGE_MS = 30_000;
const toMe = { readAt: 0, reads: 0 };

const party = (m) => `${m.name} (${m.email})`;

// The list's "Offered to you"; `changed()` refreshes the list after an accept.
export async function refreshOffersToMe({ force = false, current, changed }) {
  if (!force && Date.now() - toMe.readAt < OFFERS_MAX_AGE_MS) return;
  toMe.readAt = Date.now();
  const read = ++toMe.reads;
  const errorEl = $("#offers-error");
  let page;
  try {
    page = await api.offersToMe();
  } catch (err) {
    if (read !== toMe.reads || !current()) return;
    if (!$("#offers").hidden) {
      keepError(errorEl, err, "Could not load the offers to you");
      errorEl.dataset.source = "load"; // gone once a read works again; an answer's refusal stays
    }
    return;
  }
  if (read !== toMe.reads || !current()) return; // a later read, or another view
  const section = $("#offers");
  const items = page.items;
  if (errorEl.dataset.source === "load") {
    showError(errorEl, null);
    delete errorEl.dataset.source;
  }
  // An answer's refusal stays said, also once no offer is left (it says why
  // the one answered went): the section goes with it, when the list is left.
  section.hidden = items.length === 0 && errorEl.hidden;
  const list = $("#offers-list");
  // Twenty at a time, newest first: the rest come as these are answered.
  const more = page.total - items.length;
  preserveFocus(list, () =>
    list.replaceChildren(
      ...items.map((o) => offerToMe(o, { current, changed })),
      ...(more > 0 ? [h("li", { class: "muted", text: `And ${more} more, older: answer these first.` })] : []),
    ),
  );
}

// The relative times ("lapses in 3 days") kept current between reads.
export const refreshOfferTimes = () => refreshTimes($("#offers-list"));

function offerToMe(o, ctx) {
  const button = (verb, cls, run) =>
    h("button", {
      type: "button",
      class: cls,
      "aria-label": `${verb} ${o.notebookName}`,
      dataset: { focusKey: `${o.notebookId}:${verb}` },
      text: verb,
      onclick: (ev) => answerOffer(ev.currentTarget, o, verb, run, ctx),
    });
  return h(
    "li",
    {},
    h(
      "span",
      {},
      `${party(o.fromMember)} offers you `,
      h("strong", { text: o.notebookName }),
      ` (${o.notebookStatus}); it lapses `,
      formatTime(o.expiresAt),
      ".",
    ),
    h(
      "span",
      { class: "actions" },
      button("Accept", "small", () => api.acceptOffer(o.notebookId)),
      button("Decline", "secondary small", () => api.dropOffer(o.notebookId)),
    ),
  );
}

async function answerOffer(trigger, o, verb, run, { current, changed }) {
  if (isBusy(trigger)) return;
  markBusy(trigger, true); // marked, not disabled: focus stays on it
  const errorEl = $("#offers-error");
  const answer = await attempt(null, errorEl, `Could not ${verb.toLowerCase()} “${o.notebookName}”`, run);
  markBusy(trigger, false);
  if (answer === REFUSED) {
    // Withdrawn, replaced or lapsed meanwhile: the list is read again (the
    // refusal stays said); a running limit's refusal keeps the offer.
    delete errorEl.dataset.source;
  } else {
    announce(verb === "Accept" ? `${o.notebookName} is yours now` : `Offer of ${o.notebookName} declined`);
  }
  await refreshOffersToMe({ force: true, current, changed });
  if (!current()) return;
  // To the section's heading, or the page's once none is left: never to
  // another offer's button, where a second key press would answer it.
  const heading = $("#offers").hidden ? $("#notebooks-title") : $("#offers-title");
  heading.setAttribute("tabindex", "-1");
  heading.focus();
  if (answer !== REFUSED) await changed(); // an accepted notebook joins the list
}

// A notebook's pending offer, under its facts: to its owner and org admins
// with "Withdraw offer" (`mine`: they may), to its recipient with Accept and
// Decline; hidden for anyone else, or when there is none. The recipient's is
// found among the offers made to them (a 200, where asking the notebook's
// offer would answer most viewers 404). `current()`: the page is still this
// notebook's; `changed()` after an answer.
const onPage = { reads: 0, offer: null };

export async function showNotebookOffer(nb, { mine, me, current, changed }) {
  const el = $("#nb-offer");
  const read = ++onPage.reads;
  let offer = null;
  try {
    offer = mine
      ? await api.notebookOffer(nb.id)
      : ((await api.offersToMe(100)).items.find((o) => o.notebookId === nb.id) ?? null);
  } catch (err) {
    if (!notFound(err)) return; // kept as it was; read again with the history
  }
  if (read !== onPage.reads || !current()) return;
  onPage.offer = offer;
  if (!offer) {
    preserveFocus(el, () => el.replaceChildren()); // its button had focus: to the heading
    el.hidden = true;
    return;
  }
  el.hidden = false;
  // An answer (`run`), then the page read again, refused too: accepted,
  // withdrawn or handed on meanwhile, the page says so. Focus to `after`'s
  // control, the one it went with being gone.
  const button = (text, cls, what, run, done, after) =>
    h("button", {
      type: "button",
      class: cls,
      dataset: { focusKey: `${nb.id}:${text}` },
      text,
      onclick: async (ev) => {
        const trigger = ev.currentTarget;
        if (isBusy(trigger)) return;
        markBusy(trigger, true);
        const answer = await attempt(null, $("#nb-error"), `Could not ${what}`, run);
        markBusy(trigger, false);
        if (!current()) return;
        if (answer !== REFUSED) announce(done);
        await changed();
        const target = after.map((k) => $(`[data-focus-key="${CSS.escape(`${nb.id}:${k}`)}"]`)).find(Boolean);
        if (current()) target?.focus();
      },
    });
  const drop = () => api.dropOffer(nb.id);
  const toMe = offer.toMember.id === me;
  preserveFocus(el, () =>
    el.replaceChildren(
      ...(toMe
        ? [
            h(
              "span",
              {},
              `${party(offer.fromMember)} offers you this notebook: accepted, it is yours, and counts toward your running notebooks. It lapses `,
              formatTime(offer.expiresAt),
              ". ",
            ),
            button("Accept", "small", "accept the offer", () => api.acceptOffer(nb.id), `${nb.name} is yours now`, ["Offer", "HandOn"]),
            " ",
            button("Decline", "secondary small", "decline the offer", drop, `Offer of ${nb.name} declined`, []),
          ]
        : [
            h(
              "span",
              {},
              "Offered to ",
              h("strong", { text: party(offer.toMember) }),
              ", who has not answered yet; it lapses ",
              formatTime(offer.expiresAt),
              ". ",
            ),
            button("Withdraw offer", "secondary small", "withdraw the offer", drop, `Offer of ${nb.name} withdrawn`, ["Offer", "HandOn"]),
          ]),
    ),
  );
}

export function hideNotebookOffer() {
  onPage.reads += 1; // an answer on its way is for a page left
  onPage.offer = null;
  $("#nb-offer").hidden = true;
  $("#nb-offer").replaceChildren();
}

// A refusal said on an earlier visit of the list is not said again.
export const clearOffersError = () => showError($("#offers-error"), null);
