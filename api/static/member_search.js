// Finding a member by a part of their name or email (GET /members?q=, org
// admins): a search box feeding a select, for the hand-over dialog and a
// team's add form. An organization of thousands is never read whole.

import { api } from "./api.js";
import { h } from "./dom.js";
import { state } from "./store.js";

const DELAY_MS = 300; // after the last keystroke

// Wires `input` to fill `select` with up to `limit` members `offered(m)`
// accepts. Typing clears the choice at once: it belongs to the last answer,
// and Enter before the new one must choose nobody (an audit handed a
// notebook to, and added to a team, the member chosen before the search).
// `none(q, more)` says why nobody is offered (`more`: others were not read).
// Returns `find(q)`, which searches at once (the first list).
export function memberSearch(input, select, { limit, offered, none }) {
  let asked = 0; // the latest search: an earlier one's late answer is dropped
  let timer = null;
  // The select's latest wiring: a dialog opened again (for another notebook)
  // is not filled by the search of its last opening.
  const wiring = Symbol("member search");
  select.memberSearch = wiring;
  const current = (mine) => mine === asked && select.memberSearch === wiring;
  const show = (text) => select.replaceChildren(h("option", { value: "", text }));
  const find = async (q) => {
    const mine = ++asked;
    let page;
    try {
      page = await api.listMembers({ limit, q: q || undefined });
    } catch (err) {
      if (current(mine)) show(`Could not look members up: ${err.message}`);
      return;
    }
    if (!current(mine)) return;
    page.items.forEach((m) => state.members.set(m.id, m));
    const found = page.items.filter(offered);
    select.replaceChildren(
      h("option", { value: "", text: found.length ? "Choose a member" : none(q, !!page.marker) }),
      ...found.map((m) => h("option", { value: m.id, text: `${m.name} (${m.email})` })),
    );
  };
  input.oninput = () => {
    asked += 1;
    show("Searching…");
    clearTimeout(timer);
    timer = setTimeout(() => find(input.value.trim()), DELAY_MS);
  };
  show("Loading members…");
  return find;
}
