// The People page: the member's own API tokens, the organization's teams and
// who is in them, and (organization admins) the members themselves, all
// through the public REST API (docs/api.md, "Members and tokens"). What shows
// follows the API's rules: any member lists their own tokens and the teams;
// organization admins create teams and members; organization admins and a
// team's admins change who is in that team. The API still decides, and a
// refusal is shown like any other error.

import { REFUSED, attempt, confirmThen, openDialog, preserveFocus } from "./actions.js";
import { api, token } from "./api.js";
import { memberSearch } from "./member_search.js";
import { showNotebooksOf } from "./notebooks.js";
import { $, announce, exactTime, formatTime, h, isBusy, markBusy, refreshTimes, secretBox, setBusy, setText, showError } from "./dom.js";
import { absorb, state } from "./store.js";

const ROLES = ["admin", "editor", "viewer"];
const MEMBER_PAGE = 50;
const SESSION_REVOKED = "Signed out: you revoked this console session's token.";
// What the expiry selects offer; only those that end before the console's
// own token does (no token made here outlives it, docs/api.md).
const LIFETIMES = [
  [3600, "1 hour"],
  [8 * 3600, "8 hours"],
  [86400, "1 day"],
  [7 * 86400, "7 days"],
  [30 * 86400, "30 days"],
  [90 * 86400, "90 days"],
  [365 * 86400, "1 year"],
];

const people = {
  visit: 0, // bumped on enter and leave: answers for an earlier visit are dropped
  ceiling: null, // when the console's own token ends (its expiresAt)
  pages: { markers: [null], index: 0, next: null }, // the members table, as the notebook list
  clock: null, // the timer that keeps relative times ("3 minutes ago") true
  kept: { q: "", disabled: false }, // the members search, from the last visit
};

// The page does not poll: its relative times are brought up to date instead.
const TIMES_REFRESH_MS = 30_000;

// Set by app.js: its one sign-out path, for when this console's own token is revoked here.
let signOut = () => location.reload();
export function setSignOut(fn) {
  signOut = fn;
}

const isAdmin = () => !!state.me?.organizationAdmin;
const myRole = (teamId) => (state.me?.teams || []).find((t) => t.teamId === teamId)?.role || null;
const canManageTeam = (teamId) => isAdmin() || myRole(teamId) === "admin";
const isCurrent = (visit) => visit === people.visit;

function known(id) {
  if (state.me && id === state.me.id) return state.me;
  return state.members.get(id) || null;
}

// A member's name as far as this member knows it (a team's list names its
// members; else the id).
function personName(id) {
  const m = known(id);
  return m ? m.name || m.email || id : id;
}

function personDetail(id) {
  if (state.me && id === state.me.id) return "you";
  return known(id)?.email || "";
}

const expiryText = (iso) => (iso ? `It expires ${exactTime(iso)}.` : "It does not expire.");

// ---- calls -----------------------------------------------------------------

// ---- dialogs ---------------------------------------------------------------

// Focus the same button in the row that took a removed row's place (or the
// last row's), else `fallback`.
function focusRow(body, index, action, fallback) {
  const buttons = [...body.querySelectorAll(`button[data-action="${action}"]`)];
  const target = buttons[Math.min(index, buttons.length - 1)] || fallback;
  if (!target) return;
  if (target.matches("h2, h3")) target.setAttribute("tabindex", "-1");
  target.focus();
}

// Focus the control with this `data-focus-key` on the page, if it is there
// (a button disabled while its call ran may have lost focus meanwhile).
function focusKey(key) {
  const el = $(`#view-people [data-focus-key="${CSS.escape(key)}"]`);
  if (el) el.focus();
  return el;
}

const rowIndex = (body, key, value) => [...body.rows].findIndex((r) => r.dataset[key] === value);

function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: String(columns), class: "muted", text }));
}

// ---- a new token's secret, shown once --------------------------------------

function tokenSecretBox(created, whose, onDone) {
  return secretBox({
    id: `secret-${created.id}`,
    title: `New token “${created.name}”${whose ? ` for ${whose}` : ""}`,
    warning: `Copy it now: it will not be shown again. Only its prefix ${created.prefix}… is kept, so a lost token cannot be recovered, only revoked. ${expiryText(created.expiresAt)}`,
    label: "Token secret",
    noun: "token",
    value: created.token,
    copyLabel: "Copy token",
    onDone,
    dataset: { tokenId: created.id },
  });
}

function showSecret(container, created, whose, returnFocus) {
  const box = tokenSecretBox(created, whose, () => {
    container.replaceChildren();
    const target = returnFocus();
    if (target) target.focus();
  });
  container.replaceChildren(box);
  const input = box.querySelector("input");
  input.focus(); // read out with its warning; selected, so Ctrl+C copies it
  input.select();
}

// ---- expiry ----------------------------------------------------------------

// The lifetimes this console may give; `fresh` (a form just opened or
// reset) picks the longest, not the first option a reset leaves selected.
function fillExpiry(select, fresh = false) {
  const ends = people.ceiling ? Date.parse(people.ceiling) : Infinity;
  const keep = fresh ? "" : select.value;
  const options = LIFETIMES.filter(([seconds]) => Date.now() + seconds * 1000 < ends - 60_000).map(
    ([seconds, label]) => h("option", { value: String(seconds), text: label }),
  );
  const longest = people.ceiling
    ? `When this console session ends (${exactTime(people.ceiling)})`
    : "Never (until revoked)";
  select.replaceChildren(...options, h("option", { value: "", text: longest }));
  select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
}

function fillCeilingHints() {
  const text = people.ceiling
    ? `A token made in this console ends when this console session does (${exactTime(people.ceiling)}) at the latest: the API never lets a token outlive the token that made it. For a longer-lived token, use curl with a lasting token, or notebooks admin token create on the server.`
    : "";
  document.querySelectorAll(".ceiling-hint").forEach((p) => {
    p.textContent = text;
    p.hidden = !text;
  });
  fillExpiry($("#token-expiry"));
  fillExpiry($("#member-token-expiry"));
}

function tokenBody(nameInput, expirySelect, readOnlyBox) {
  const body = { name: nameInput.value.trim() };
  if (expirySelect.value) body.expiresInSeconds = Number(expirySelect.value);
  if (readOnlyBox.checked) body.readOnly = true; // docs/api.md "Read-only tokens"
  return body;
}

// ---- your tokens -----------------------------------------------------------

// Who made a token: an org admin may make one for a member (and saw its
// secret once), the operator's `notebooks admin` one for anybody.
function madeBy(t) {
  if (t.createdBy === state.me.id) return "you";
  return t.createdBy ? "an organization admin" : "the operator";
}

// The tokens whose revocation also revokes this console's own: the one it
// signed in with when that had an end, and so on up (`madeWith`, docs/api.md).
function sessionMakers(items) {
  const byId = new Map(items.map((t) => [t.id, t]));
  const makers = new Set();
  for (let t = byId.get(token.id()); t?.madeWith && !makers.has(t.madeWith); ) {
    makers.add(t.madeWith);
    t = byId.get(t.madeWith);
  }
  return makers;
}

function tokenRow(t, makers) {
  const session = t.id === token.id();
  const maker = makers.has(t.id);
  const label = `${t.name} (${t.prefix}…${session ? ", this console session" : ""})`;
  return h(
    "tr",
    { dataset: { tokenId: t.id } },
    h(
      "td",
      { "data-label": "Name" },
      h("strong", { text: t.name }),
      readOnlyBadge(t),
      session ? h("span", { class: "badge session", text: "this console session" }) : null,
      maker ? h("span", { class: "badge session", text: "this console signed in with it" }) : null,
    ),
    ...tokenFacts(t, madeBy(t)),
    revokeCell(label, `revoke:${t.id}`, (ev) => revokeToken(t, session, maker, ev.currentTarget)),
  );
}

const readOnlyBadge = (t) => (t.readOnly ? h("span", { class: "badge", text: "read-only" }) : null);

// What a token's row says wherever tokens are listed (yours, a member's).
function tokenFacts(t, maker) {
  return [
    h("td", { "data-label": "Prefix" }, h("code", { text: `${t.prefix}…` })),
    h("td", { "data-label": "Created", class: "when" }, formatTime(t.createdAt)),
    h("td", { "data-label": "Made by", text: maker }),
    h("td", { "data-label": "Last used", class: "when" }, formatTime(t.lastUsedAt)),
    h("td", { "data-label": "Expires", class: "when" }, formatTime(t.expiresAt)),
  ];
}

function revokeCell(label, focusKey, onclick) {
  return h(
    "td",
    { class: "row-actions" },
    h("button", {
      type: "button",
      class: "danger-outline",
      "aria-label": `Revoke ${label}`,
      dataset: { action: "revoke", focusKey },
      text: "Revoke",
      onclick,
    }),
  );
}

async function loadTokens() {
  const visit = people.visit;
  const errorEl = $("#tokens-error");
  let items;
  try {
    ({ items } = await api.listTokens(state.me.id));
  } catch (err) {
    if (isCurrent(visit)) showError(errorEl, err, "Could not load your tokens");
    return;
  }
  if (!isCurrent(visit)) return;
  showError(errorEl, null);
  people.ceiling = items.find((t) => t.id === token.id())?.expiresAt || null;
  const makers = sessionMakers(items);
  fillCeilingHints();
  const body = $("#tokens-body");
  preserveFocus(body, () =>
    body.replaceChildren(
      ...(items.length ? items.map((t) => tokenRow(t, makers)) : [emptyRow(7, "You have no tokens.")]),
    ),
  );
}

function revokeToken(t, session, maker, trigger) {
  const index = rowIndex($("#tokens-body"), "tokenId", t.id);
  const ends = session || maker;
  confirmThen({
    trigger,
    title: session ? "Revoke this console session's token?" : `Revoke “${t.name}”?`,
    text: session
      ? "This console is signed in with it: revoking it signs you out of this console at once, and the notebooks opened from this tab close. The tokens you made in this console are revoked with it (they are bound to it); your other tokens go on working."
      : maker
        ? `This console signed in with ${t.prefix}…, which has an end, so the console's own token is bound to it: revoking it also revokes the tokens made with it, signs you out of this console at once and closes the notebooks opened from this tab. Anything else that uses it is refused from its next request on. This cannot be undone.`
        : `Anything that uses ${t.prefix}… (a script, curl, another console) is refused from its next request on. This cannot be undone.`,
    action: ends ? "Revoke and sign out" : "Revoke token",
    run: () => api.revokeMemberToken(state.me.id, t.id),
    after: async () => {
      if (ends) {
        signOut(SESSION_REVOKED);
        return;
      }
      announce(`Token ${t.name} revoked`);
      await loadTokens();
      focusRow($("#tokens-body"), index, "revoke", $("#token-name"));
    },
  });
}

async function createOwnToken(ev) {
  ev.preventDefault();
  const errorEl = $("#token-form-error");
  const submit = $("#token-submit");
  const name = $("#token-name");
  const visit = people.visit;
  const created = await attempt(submit, errorEl, "Could not create the token", () =>
    api.createToken(state.me.id, tokenBody(name, $("#token-expiry"), $("#token-read-only"))),
  );
  if (created === REFUSED) {
    name.focus();
    return;
  }
  announce(`Token ${created.name} created`);
  $("#token-form").reset();
  fillExpiry($("#token-expiry"), true);
  await loadTokens();
  // Left the page meanwhile: the secret is not put into a page no one sees.
  if (isCurrent(visit)) showSecret($("#token-secret"), created, null, () => name);
}

// ---- teams -----------------------------------------------------------------

async function loadTeams({ open } = {}) {
  const visit = people.visit;
  const errorEl = $("#people-teams-error");
  let items;
  try {
    ({ items } = await api.listTeams());
  } catch (err) {
    if (isCurrent(visit)) showError(errorEl, err, "Could not load teams");
    return;
  }
  if (!isCurrent(visit)) return;
  showError(errorEl, null);
  items.forEach((t) => state.teams.set(t.id, t));
  const container = $("#people-teams");
  const opened = new Set([...container.querySelectorAll("details[open]")].map((d) => d.dataset.teamId));
  if (open) opened.add(open);
  // Your own teams first (what you manage or use), each part by name.
  const mine = (t) => (myRole(t.id) ? 0 : 1);
  const cards = [...items].sort((a, b) => mine(a) - mine(b)).map(teamCard);
  container.replaceChildren(...(cards.length ? cards : [h("p", { class: "muted", text: "No teams yet." })]));
  // Opening fires `toggle`, which loads the team's members.
  cards.filter((d) => opened.has(d.dataset.teamId)).forEach((d) => {
    d.open = true;
  });
}

function teamCard(team) {
  const role = myRole(team.id);
  const body = h("div", { class: "team-body" });
  const details = h(
    "details",
    { class: "team-card", dataset: { teamId: team.id } },
    h(
      "summary",
      {},
      h("span", { class: "team-name", text: team.name }),
      role ? h("span", { class: "badge", text: `you: ${role}` }) : null,
    ),
    body,
  );
  details.addEventListener("toggle", () => {
    if (details.open) loadTeamMembers(team, body);
  });
  return details;
}

async function loadTeamMembers(team, body) {
  const visit = people.visit;
  let items;
  try {
    let included;
    ({ items, included } = await api.teamMembers(team.id));
    absorb(included); // their names
  } catch (err) {
    if (!isCurrent(visit)) return;
    const error = h("p", { class: "error", role: "alert" });
    showError(error, err, `Could not load the members of ${team.name}`);
    body.replaceChildren(error);
    return;
  }
  if (!isCurrent(visit) || !body.isConnected) return;
  preserveFocus(body, () => body.replaceChildren(...teamBody(team, items)));
}

function reloadTeam(team) {
  const details = $(`#people-teams details[data-team-id="${CSS.escape(team.id)}"]`);
  return details ? loadTeamMembers(team, details.querySelector(".team-body")) : Promise.resolve();
}

function teamBody(team, memberships) {
  const manage = canManageTeam(team.id);
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const list = memberships.length
    ? membersTable(team, memberships, manage, error)
    : h("p", { class: "muted", text: "Nobody is in this team yet." });
  return [list, error, manage ? addForm(team, memberships, error) : note(team), ...(isAdmin() ? teamTools(team, memberships) : [])];
}

// Organization admins rename a team or delete it (the API's rule).
function teamTools(team, memberships) {
  const id = `team-name-${team.id}`;
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const input = h("input", { id, name: "name", value: team.name, required: true, maxlength: "128", autocomplete: "off", dataset: { focusKey: `team-name:${team.id}` } });
  const form = h(
    "form",
    {
      class: "inline-form team-tools",
      novalidate: true,
      onsubmit: (ev) => {
        ev.preventDefault();
        renameTeam(team, input.value.trim(), error, ev.submitter);
      },
    },
    h("label", { for: id, text: "Team name" }),
    input,
    h("button", { type: "submit", class: "secondary small", "aria-label": `Rename ${team.name}`, text: "Rename" }),
    h("button", {
      type: "button",
      class: "danger-outline small",
      "aria-label": `Delete team ${team.name}`,
      dataset: { focusKey: `delete-team:${team.id}` },
      text: "Delete team",
      onclick: (ev) => deleteTeam(team, memberships, ev.currentTarget),
    }),
  );
  return [form, error];
}

async function renameTeam(team, name, error, button) {
  if (name === team.name) return;
  const renamed = await attempt(button, error, "Could not rename the team", () => api.renameTeam(team.id, name));
  if (renamed === REFUSED) return;
  announce(`Team ${team.name} is now ${renamed.name}`);
  await loadTeams({ open: team.id });
  focusKey(`team-name:${team.id}`);
}

async function deleteTeam(team, memberships, trigger) {
  let shared = null;
  try {
    shared = await api.teamNotebookCount(team.id);
  } catch {
    // Said without the number; the delete itself reports what goes wrong.
  }
  const n = memberships.length;
  const who = n === 0 ? "Nobody is in it" : n === 1 ? "Its 1 member leaves it" : `Its ${n} members leave it`;
  const what =
    shared === null
      ? "the notebooks shared with it lose it as a way in"
      : shared === 0
        ? "no notebook is shared with it"
        : shared === 1
          ? "the 1 notebook shared with it loses it as a way in"
          : `the ${shared} notebooks shared with it lose it as a way in`;
  confirmThen({
    trigger,
    title: `Delete team ${team.name}?`,
    text: `${who}; ${what}: what the team gave ends at once, open notebook sessions too. The notebooks themselves stay, with their owners and other teams. This cannot be undone.`,
    action: "Delete team",
    run: () => api.deleteTeam(team.id),
    after: async () => {
      announce(`Team ${team.name} deleted`);
      state.teams.delete(team.id);
      if (memberships.some((m) => m.memberId === state.me.id)) state.me = await api.me();
      await loadTeams();
      const heading = $("#people-teams-title");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    },
  });
}

function membersTable(team, memberships, manage, error) {
  return h(
    "table",
    { class: "cards" },
    h("caption", { class: "visually-hidden", text: `Members of ${team.name}` }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", text: "Member" }),
        h("th", { scope: "col", text: "Role" }),
        manage ? h("th", { scope: "col" }, h("span", { class: "visually-hidden", text: "Actions" })) : null,
      ),
    ),
    h("tbody", {}, ...memberships.map((m) => membershipRow(team, m, manage, error, memberships))),
  );
}

function note(team) {
  return h("p", { class: "hint", text: `Only organization admins and the admins of ${team.name} change who is in it.` });
}

function membershipRow(team, m, manage, error, memberships) {
  const name = personName(m.memberId);
  const detail = personDetail(m.memberId);
  return h(
    "tr",
    { dataset: { memberId: m.memberId } },
    h(
      "td",
      { "data-label": "Member" },
      known(m.memberId) ? h("span", { text: name }) : h("code", { text: name }),
      detail ? h("div", { class: "muted small", text: detail }) : null,
    ),
    h("td", { "data-label": "Role" }, manage ? roleForm(team, m, name, error, memberships) : h("span", { text: m.role })),
    manage
      ? h(
          "td",
          { class: "row-actions" },
          h("button", {
            type: "button",
            class: "danger-outline small",
            "aria-label": `Remove ${name} from ${team.name}`,
            dataset: { action: "remove", focusKey: `remove:${team.id}:${m.memberId}` },
            text: "Remove",
            onclick: (ev) => removeFromTeam(team, m.memberId, name, ev.currentTarget, memberships),
          }),
        )
      : null,
  );
}

function roleSelect(id, selected, key) {
  return h(
    "select",
    { id, name: "role", dataset: { focusKey: key } },
    ...ROLES.map((r) => h("option", { value: r, selected: r === selected, text: r })),
  );
}

function roleForm(team, m, name, error, memberships) {
  const id = `role-${team.id}-${m.memberId}`;
  const select = roleSelect(id, m.role, `role:${team.id}:${m.memberId}`);
  return h(
    "form",
    {
      class: "role-form",
      onsubmit: (ev) => {
        ev.preventDefault();
        const role = select.value;
        const warning = role === "admin" ? null : leavingWarning(team, memberships, m.memberId);
        if (!warning) return setRole(team, m.memberId, role, name, error, ev.submitter);
        const you = m.memberId === state.me.id;
        confirmThen({
          trigger: ev.submitter,
          title: you ? `Make yourself ${role} in ${team.name}?` : `Make ${name} ${role} in ${team.name}?`,
          text: warning,
          action: `Make ${role}`,
          run: () => api.setTeamRole(team.id, m.memberId, role),
          after: () => afterRole(team, m.memberId, role, name),
        });
      },
    },
    h("label", { for: id, class: "visually-hidden", text: `Role of ${name} in ${team.name}` }),
    select,
    h("button", {
      type: "submit",
      class: "secondary small",
      "aria-label": `Save role of ${name} in ${team.name}`,
      dataset: { focusKey: `save:${team.id}:${m.memberId}` },
      text: "Save",
    }),
  );
}

// After a change that involves the member signed in, what it may do changed:
// read /me again and redraw every team (badges, who may manage what).
async function afterTeamChange(team, memberId) {
  if (memberId === state.me.id) {
    state.me = await api.me();
    await loadTeams();
  } else {
    await reloadTeam(team);
  }
}

async function setRole(team, memberId, role, name, error, button) {
  const set = () => api.setTeamRole(team.id, memberId, role);
  if ((await attempt(button, error, "Could not change the role", set)) === REFUSED) return;
  await afterRole(team, memberId, role, name);
}

async function afterRole(team, memberId, role, name) {
  announce(`${name} is now ${role} in ${team.name}`);
  await afterTeamChange(team, memberId);
  // No longer managing the team (one's own role lowered): its summary.
  if (!focusKey(`save:${team.id}:${memberId}`) && !focusKey(`add-member:${team.id}`)) {
    $(`#people-teams details[data-team-id="${CSS.escape(team.id)}"] summary`)?.focus();
  }
}

// What a change that takes `memberId` out of the team's admins (a lower
// role, or out of the team) costs, when it costs more than the row says:
// the member's own management of the team (which only an admin gives back),
// or the team's last admin (then only organization admins manage it).
// Null when it is an ordinary change.
function leavingWarning(team, memberships, memberId) {
  const was = memberships.find((m) => m.memberId === memberId);
  const lastAdmin = was?.role === "admin" && !memberships.some((m) => m.memberId !== memberId && m.role === "admin");
  const you = memberId === state.me.id && !isAdmin();
  const parts = [];
  if (you && was?.role === "admin") parts.push(`You will no longer manage ${team.name}, and cannot undo it: only another of its admins or an organization admin can.`);
  if (lastAdmin) parts.push(`${team.name} will have no admin left: only organization admins can change who is in it then.`);
  return parts.length ? parts.join(" ") : null;
}

function removeFromTeam(team, memberId, name, trigger, memberships) {
  const you = memberId === state.me.id;
  const back = isAdmin() ? "As an organization admin you can add yourself back." : "You cannot add yourself back.";
  const gives = you
    ? `You lose what this team gives: the notebooks shared only with ${team.name} are no longer yours to see or use. ${back}`
    : `${name} loses what this team gives: the notebooks shared only with ${team.name} are no longer theirs to see or use. They can be added again.`;
  const warning = leavingWarning(team, memberships, memberId);
  confirmThen({
    trigger,
    title: you ? `Leave ${team.name}?` : `Remove ${name} from ${team.name}?`,
    text: warning ? `${gives} ${warning}` : gives,
    action: "Remove from team",
    run: () => api.removeTeamMember(team.id, memberId),
    after: async () => {
      announce(`${name} removed from ${team.name}`);
      await afterTeamChange(team, memberId);
      if (!focusKey(`add-member:${team.id}`)) {
        $(`#people-teams details[data-team-id="${CSS.escape(team.id)}"] summary`)?.focus();
      }
    },
  });
}

// Org admins find a member by name or email (member_search.js: the newest
// 100 until something is typed, those not in the team offered) and pick; a
// team admin who is not one cannot list members (GET /members is 403) and
// types a member id, the one thing PUT /teams/{team}/members/{member} takes.
function memberPicker(id, team) {
  const focusKey = `add-member:${team.id}`;
  if (!isAdmin()) {
    return h("input", {
      id,
      name: "member",
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": `${id}-help`,
      dataset: { focusKey },
    });
  }
  return h("select", { id, name: "member", required: true, dataset: { focusKey } });
}

// The search box above an org admin's picker, wired to it.
function findField(team, picker, memberships) {
  const id = `find-${team.id}-member`;
  const input = h("input", {
    id,
    type: "search",
    maxlength: "128",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "part of a name or email",
    "aria-controls": picker.id,
    dataset: { focusKey: `find-member:${team.id}` },
  });
  const inTeam = new Set(memberships.map((m) => m.memberId));
  memberSearch(input, picker, {
    limit: 100, // the API's largest page
    offered: (m) => !inTeam.has(m.id),
    none: (q, more) =>
      more
        ? "All of the first 100 found are in this team: type more of a name or email"
        : q
          ? `Nobody else's name or email contains “${q}”`
          : "Everyone is in this team",
  })("");
  return h("div", { class: "field" }, h("label", { for: id, text: "Find whom to add" }), input);
}

function addForm(team, memberships, error) {
  const memberId = `add-${team.id}-member`;
  const roleId = `add-${team.id}-role`;
  const picker = memberPicker(memberId, team);
  const role = roleSelect(roleId, "editor", `add-role:${team.id}`);
  const help = isAdmin()
    ? null
    : h("p", {
        id: `${memberId}-help`,
        class: "hint",
        text: "Their member id: each member finds theirs at the top of their own People page.",
      });
  return h(
    "form",
    {
      class: "fields-inline team-add",
      novalidate: true,
      "aria-label": `Add a member to ${team.name}`,
      onsubmit: (ev) => {
        ev.preventDefault();
        addToTeam(team, picker, role.value, error, ev.submitter);
      },
    },
    isAdmin() ? findField(team, picker, memberships) : null,
    h("div", { class: "field" }, h("label", { for: memberId, text: isAdmin() ? "Member to add" : "Member id" }), picker, help),
    h("div", { class: "field" }, h("label", { for: roleId, text: "Role" }), role),
    h("button", { type: "submit", dataset: { focusKey: `add-submit:${team.id}` }, text: `Add to ${team.name}` }),
  );
}

async function addToTeam(team, picker, role, error, button) {
  showError(error, null);
  const memberId = picker.value.trim().toUpperCase();
  if (!memberId) {
    showError(error, { detail: isAdmin() ? "Choose a member to add first." : "Type the member id of whom to add first." });
    picker.focus();
    return;
  }
  // What a team admin may type wrong (an email, a name): said here, where the
  // API would only say "not a valid id".
  if (!isAdmin() && !/^[A-Z0-9]{1,20}$/.test(memberId)) {
    const what = memberId.includes("@") ? "That is an email address; a" : "A";
    showError(error, {
      detail: `${what} member id is letters and digits, like ${state.me.id}. Ask them for theirs: it is at the top of their own People page (only organization admins can look members up).`,
    });
    picker.focus();
    return;
  }
  const add = () => api.setTeamRole(team.id, memberId, role);
  if ((await attempt(button, error, "Could not add the member", add)) === REFUSED) {
    picker.focus();
    return;
  }
  await afterTeamChange(team, memberId); // the team's list names them
  announce(`${personName(memberId)} added to ${team.name} as ${role}`);
  focusKey(`add-member:${team.id}`);
}

async function createTeam(ev) {
  ev.preventDefault();
  const errorEl = $("#team-form-error");
  const submit = $("#team-submit");
  const name = $("#team-name");
  const created = await attempt(submit, errorEl, "Could not create the team", () =>
    api.createTeam({ name: name.value.trim() }),
  );
  if (created === REFUSED) {
    name.focus();
    return;
  }
  announce(`Team ${created.name} created`);
  $("#team-form").reset();
  await loadTeams({ open: created.id });
  const summary = $(`#people-teams details[data-team-id="${CSS.escape(created.id)}"] summary`);
  if (summary) summary.focus();
}

// ---- members (organization admins) -----------------------------------------

// A row of the members table: name (and `marked`), email, `role`, when
// added, and what may be done to them (`actions`).
function memberTableRow(m, { marked = null, role, actions }) {
  return h(
    "tr",
    { dataset: { memberId: m.id } },
    h("td", { "data-label": "Name" }, h("span", {}, h("strong", { text: m.name || m.email }), marked)),
    h("td", { "data-label": "Email", class: "email", text: m.email }),
    h("td", { "data-label": "Role" }, ...role),
    h("td", { "data-label": "Added", class: "when" }, formatTime(m.createdAt)),
    h(
      "td",
      { class: "row-actions" },
      notebooksButton(m, m.name || m.email),
      activityButton(m, m.name || m.email),
      ...actions,
    ),
  );
}

function memberRow(m) {
  if (m.disabledAt) return disabledMemberRow(m);
  const self = m.id === state.me.id;
  const name = m.name || m.email;
  return memberTableRow(m, {
    marked: self ? h("span", { class: "muted", text: " (you)" }) : null,
    role: [m.organizationAdmin ? h("span", { class: "badge org-admin", text: "Organization admin" }) : h("span", { text: "Member" })],
    actions: [
      h("button", {
        type: "button",
        class: "secondary small",
        "aria-label": `New token for ${name}`,
        dataset: { action: "token", focusKey: `token:${m.id}` },
        text: "New token",
        onclick: (ev) => openMemberToken(m, ev.currentTarget),
      }),
      // Your own are under "Your tokens" above.
      self
        ? null
        : h("button", {
            type: "button",
            class: "secondary small",
            "aria-label": `Tokens of ${name}`,
            dataset: { action: "tokens", focusKey: `tokens:${m.id}` },
            text: "Tokens",
            onclick: (ev) => openMemberTokens(m, ev.currentTarget),
          }),
      h("button", {
        type: "button",
        class: "secondary small",
        "aria-label": m.organizationAdmin ? `Remove ${name} as organization admin` : `Make ${name} an organization admin`,
        dataset: { action: "admin", focusKey: `admin:${m.id}` },
        text: m.organizationAdmin ? "Remove admin" : "Make admin",
        onclick: (ev) => setOrgAdmin(m, !m.organizationAdmin, ev.currentTarget),
      }),
      // The API refuses an admin disabling itself (409): no button for that.
      self
        ? null
        : h("button", {
            type: "button",
            class: "danger-outline small",
            "aria-label": `Disable ${name}`,
            dataset: { action: "disable", focusKey: `disable:${m.id}` },
            text: "Disable",
            onclick: (ev) => disableMember(m, ev.currentTarget),
          }),
    ],
  });
}

// What a member owns, in the notebook list (someone leaving: hand them on).
function notebooksButton(m, name) {
  return h("button", {
    type: "button",
    class: "secondary small",
    "aria-label": `Notebooks of ${name}`,
    dataset: { action: "notebooks", focusKey: `notebooks:${m.id}` },
    text: "Notebooks",
    onclick: () => showNotebooksOf(m.id),
  });
}

// What a member did, across the organization's notebooks (activity.js): a
// disabled member's too (an offboarding's audit). Named there by this row.
function activityButton(m, name) {
  return h("button", {
    type: "button",
    class: "secondary small",
    "aria-label": `Activity of ${name}`,
    dataset: { action: "activity", focusKey: `activity:${m.id}` },
    text: "Activity",
    onclick: () => {
      state.members.set(m.id, { ...m, disabled: !!m.disabledAt }); // as this row has them now
      location.hash = `#/activity/${encodeURIComponent(m.id)}`;
    },
  });
}

// A disabled member (the list's "Show disabled members"): enabled again, or left.
function disabledMemberRow(m) {
  return memberTableRow(m, {
    role: [h("span", { class: "badge", text: "Disabled" }), " ", formatTime(m.disabledAt)],
    actions: [
      h("button", {
        type: "button",
        class: "secondary small",
        "aria-label": `Enable ${m.name || m.email}`,
        dataset: { action: "enable", focusKey: `enable:${m.id}` },
        text: "Enable",
        onclick: (ev) => enableMember(m, ev.currentTarget),
      }),
    ],
  });
}

function renderMembersPager(total, shown) {
  const pg = people.pages;
  const count = `${total.toLocaleString()}${pg.disabled ? " disabled" : ""} member${total === 1 ? "" : "s"}`;
  const single = pg.index === 0 && !pg.next;
  const pages = Math.max(pg.index + 1, Math.ceil(total / MEMBER_PAGE));
  const info = $("#members-page-info");
  const text = single ? count : `Page ${pg.index + 1} of ${pages} · ${count}`;
  if (info.textContent !== text) info.textContent = text;
  const prev = $("#members-prev");
  const next = $("#members-next");
  const focused = document.activeElement;
  $("#members-pager").hidden = shown === 0 || single;
  prev.disabled = pg.index === 0;
  next.disabled = !pg.next;
  // A pager button that just became disabled keeps focus on the pager.
  if ([prev, next].includes(focused) && focused.disabled) {
    const other = [next, prev].find((b) => !b.disabled);
    if (other) other.focus();
  }
}

async function loadMembersPage() {
  const visit = people.visit;
  const pg = people.pages;
  const asked = pg.index;
  // Left the page, or another page was asked for since (Next, then a member
  // added, which goes back to page 1): this answer is not for the table.
  const stale = () => !isCurrent(visit) || people.pages !== pg || pg.index !== asked;
  const errorEl = $("#members-error");
  let page;
  try {
    page = await api.listMembers({ limit: MEMBER_PAGE, marker: pg.markers[pg.index], q: pg.q, disabled: pg.disabled });
  } catch (err) {
    if (!stale()) showError(errorEl, err, "Could not load members");
    return;
  }
  if (stale()) return;
  if (page.items.length === 0 && pg.index > 0) {
    // Everyone on this page was disabled: show the page before.
    pg.index -= 1;
    pg.markers.length = pg.index + 1;
    await loadMembersPage();
    return;
  }
  showError(errorEl, null);
  pg.next = page.marker || null;
  page.items.forEach((m) => state.members.set(m.id, m));
  const body = $("#members-body");
  setText($("#members-found"), pg.q ? `${page.total} found` : "");
  const none = pg.q
    ? `${pg.disabled ? "No disabled member's" : "Nobody's"} name or email contains “${pg.q}”.`
    : pg.disabled
      ? "No member is disabled."
      : "No members.";
  preserveFocus(body, () =>
    body.replaceChildren(...(page.items.length ? page.items.map(memberRow) : [emptyRow(5, none)])),
  );
  renderMembersPager(page.total ?? page.items.length, page.items.length);
}

function goToMembersPage(index) {
  const pg = people.pages;
  if (index < 0) return; // Previous twice before page 1 came back
  if (index === pg.index + 1) {
    if (!pg.next) return;
    pg.markers[index] = pg.next;
  }
  pg.index = index;
  pg.markers.length = index + 1;
  pg.next = null;
  announce(`Members page ${index + 1}`);
  loadMembersPage();
}

// A search (what the box holds, 300 ms after the last keystroke): page 1 of
// the members it finds, newest first; an empty box is every member.
function searchMembers() {
  clearTimeout(people.searchTimer);
  people.searchTimer = setTimeout(() => {
    const q = $("#members-search").value.trim();
    if (q === (people.pages.q || "")) return;
    people.pages = firstPage(q);
    loadMembersPage();
  }, 300);
}

// Page 1 of the members (of the disabled ones when the box is ticked) whose
// name or email holds `q` (null: everyone).
function firstPage(q = null) {
  return { markers: [null], index: 0, next: null, q: q || null, disabled: $("#members-disabled").checked };
}

function showDisabled() {
  people.pages = firstPage($("#members-search").value.trim());
  loadMembersPage();
}

// Members changed: the table, the team pickers and the open teams' lists.
async function membersChanged() {
  await loadMembersPage();
  await loadTeams();
}

async function addMember(ev) {
  ev.preventDefault();
  const form = $("#member-form");
  const errorEl = $("#member-form-error");
  const submit = $("#member-submit");
  showError(errorEl, null);
  const body = {
    email: $("#member-email").value.trim(),
    name: $("#member-name").value.trim(),
    organizationAdmin: $("#member-admin").checked,
  };
  if ((await attempt(submit, errorEl, "Could not add the member", () => api.createMember(body))) === REFUSED) {
    $("#member-email").focus();
    return;
  }
  announce(`${body.name} added. Give them a token with “New token”.`);
  form.reset();
  $("#members-search").value = "";
  $("#members-disabled").checked = false;
  people.pages = firstPage(); // the newest is first on page 1
  await membersChanged();
  $("#member-email").focus();
}

// What they own, said before they go: "owns 3 notebooks" (GET
// /workloads/notebooks?owner=&limit=0: its total); "" when unknown.
async function ownedText(m, name) {
  try {
    const n = await api.ownedNotebookCount(m.id);
    return n === 0 ? `${name} owns no notebook. ` : `${name} owns ${n} notebook${n === 1 ? "" : "s"}. `;
  } catch {
    return ""; // said without the number; the disabling itself reports what goes wrong
  }
}

async function disableMember(m, trigger) {
  const name = m.name || m.email;
  const index = rowIndex($("#members-body"), "memberId", m.id);
  if (isBusy(trigger)) return; // counting already: one question
  const visit = people.visit;
  markBusy(trigger, true);
  const owned = await ownedText(m, name);
  markBusy(trigger, false);
  if (!isCurrent(visit)) return; // left People meanwhile: no question over another page
  confirmThen({
    trigger,
    title: `Disable ${name}?`,
    text: `${name} (${m.email}) can no longer use this organization: every API token of theirs stops working at once, so their scripts and consoles are refused from the next request on. They leave the member list and their teams; a team they were the only admin of is then managed by organization admins only. ${owned}Their notebooks stay, owned by them (shown as disabled): running ones keep running until they stop by themselves or someone stops them, and organization admins can still stop, share, hand on (Show disabled members, then “Notebooks” on their row) or delete them. An organization admin can enable them again (Show disabled members), with their teams and notebooks but none of their tokens.`,
    action: "Disable member",
    run: () => api.disableMember(m.id),
    after: async () => {
      announce(`${name} disabled`);
      await membersChanged();
      focusRow($("#members-body"), index, "disable", $("#members-title"));
    },
  });
}

function enableMember(m, trigger) {
  const name = m.name || m.email;
  const index = rowIndex($("#members-body"), "memberId", m.id);
  confirmThen({
    trigger,
    title: `Enable ${name} again?`,
    text: `${name} (${m.email}) can use this organization again, with the teams, roles and notebooks they had${m.organizationAdmin ? ", as an organization admin" : ""}. None of their old tokens works again: give them a new one with “New token” once they show in the member list.`,
    action: "Enable member",
    context: "Could not enable the member",
    run: () => api.enableMember(m.id),
    after: async () => {
      state.members.set(m.id, { ...m, disabledAt: null });
      announce(`${name} enabled`);
      await membersChanged();
      focusRow($("#members-body"), index, "enable", $("#members-title"));
    },
  });
}

// Make a member an organization admin, or no longer one; asked first (it
// gives, or takes, the whole organization). The API keeps one admin at least.
function setOrgAdmin(m, admin, trigger) {
  const self = m.id === state.me.id;
  const name = self ? "you" : m.name || m.email;
  const powers = "add and disable members, make and revoke their tokens, manage every team and workload config, and open, stop or delete any notebook of the organization";
  confirmThen({
    trigger,
    title: admin ? `Make ${name} an organization admin?` : self ? "Stop being an organization admin?" : `Remove ${name} as organization admin?`,
    text: admin
      ? `${name} can then ${powers}.`
      : self
        ? `You can then no longer ${powers}, and cannot undo it yourself: another organization admin can. Notebooks you reach only as an admin close to you at once.`
        : `${name} can then no longer ${powers}. Notebooks they reach only as an admin close to them at once.`,
    action: admin ? "Make admin" : "Remove admin",
    run: () => api.updateMember(m.id, { organizationAdmin: admin }),
    after: async () => {
      announce(admin ? `${name} is an organization admin` : `${name} is no longer an organization admin`);
      if (self) {
        state.me = await api.me();
        peopleView.enter(); // the admins' sections go
        return;
      }
      await membersChanged();
      focusKey(`admin:${m.id}`);
    },
  });
}

// A member's live tokens, for an org admin: a leaked one is revoked on its
// own, without disabling the member (which cannot be undone).
function openMemberTokens(m, trigger) {
  people.tokensOf = m.id; // an answer for another member's dialog is dropped
  $("#member-tokens-title").textContent = `Tokens of ${m.name || m.email}`;
  $("#member-tokens-body").replaceChildren();
  showError($("#member-tokens-error"), null);
  openDialog($("#member-tokens-dialog"), trigger);
  return loadMemberTokens(m);
}

async function loadMemberTokens(m) {
  const errorEl = $("#member-tokens-error");
  const visit = people.visit;
  try {
    const { items } = await api.listTokens(m.id);
    if (!isCurrent(visit) || people.tokensOf !== m.id) return;
    showError(errorEl, null);
    $("#member-tokens-body").replaceChildren(
      ...(items.length
        ? items.map((t) => memberTokenRow(m, t))
        : [h("tr", {}, h("td", { colspan: "7", class: "muted", text: "No live tokens." }))]),
    );
  } catch (err) {
    if (isCurrent(visit) && people.tokensOf === m.id) showError(errorEl, err, "Could not load the tokens");
  }
}

function memberTokenRow(m, t) {
  const maker =
    t.createdBy === m.id ? "them" : t.createdBy === state.me.id ? "you" : t.createdBy ? "an organization admin" : "the operator";
  return h(
    "tr",
    { dataset: { tokenId: t.id } },
    h("td", { "data-label": "Name" }, h("strong", { text: t.name }), readOnlyBadge(t)),
    ...tokenFacts(t, maker),
    revokeCell(`${t.name} (${t.prefix}…)`, `member-revoke:${t.id}`, (ev) => revokeMembersToken(m, t, ev.currentTarget)),
  );
}

function revokeMembersToken(m, t, trigger) {
  const name = m.name || m.email;
  const index = rowIndex($("#member-tokens-body"), "tokenId", t.id);
  confirmThen({
    trigger,
    title: `Revoke “${t.name}” of ${name}?`,
    text: `Anything that uses ${t.prefix}… is refused from its next request on, and the notebook sessions opened with it end within seconds; tokens made with it while it had an end go with it. ${name}'s other tokens go on. This cannot be undone.`,
    action: "Revoke token",
    run: () => api.revokeMemberToken(m.id, t.id),
    after: async () => {
      announce(`Token ${t.name} of ${name} revoked`);
      await loadMemberTokens(m);
      focusRow($("#member-tokens-body"), index, "revoke", $("#member-tokens-close"));
    },
  });
}

function openMemberToken(m, trigger) {
  const name = m.name || m.email;
  const dialog = $("#member-token-dialog");
  const form = $("#member-token-form");
  const error = $("#member-token-error");
  const submit = $("#member-token-submit");
  form.reset();
  fillExpiry($("#member-token-expiry"), true);
  showError(error, null);
  $("#member-token-title").textContent = `New token for ${name}`;
  const finish = openDialog(dialog, trigger);
  $("#member-token-name").focus();
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const visit = people.visit;
    const created = await attempt(submit, error, null, () =>
      api.createToken(
        m.id,
        tokenBody($("#member-token-name"), $("#member-token-expiry"), $("#member-token-read-only")),
      ),
    );
    if (created === REFUSED || !isCurrent(visit)) return; // (left the page: no secret shown)
    finish();
    announce(`Token ${created.name} for ${name} created`);
    showSecret($("#member-secret"), created, name, () => {
      const again = $(`#members-body [data-focus-key="token:${CSS.escape(m.id)}"]`);
      if (again) return again;
      $("#members-title").setAttribute("tabindex", "-1");
      return $("#members-title");
    });
  };
}

// ---- the view --------------------------------------------------------------

function renderYou() {
  const me = state.me;
  $("#people-you").replaceChildren(
    `Signed in as ${me.name || me.email}${me.email ? ` (${me.email})` : ""}. Your member id is `,
    h("code", { text: me.id }),
    ": a team admin adds you to a team with it.",
  );
}

function closeDialogs() {
  for (const dialog of [$("#confirm-dialog"), $("#member-token-dialog"), $("#member-tokens-dialog")]) {
    if (dialog.open) dialog.close();
  }
}

export const peopleView = {
  el: () => $("#view-people"),
  enter() {
    people.visit += 1;
    const admin = isAdmin();
    renderYou();
    for (const sel of ["#tokens-error", "#token-form-error", "#people-teams-error", "#team-form-error", "#members-error", "#member-form-error"]) {
      showError($(sel), null);
    }
    for (const sel of ["#tokens-body", "#token-secret", "#people-teams", "#members-body", "#member-secret"]) {
      $(sel).replaceChildren();
    }
    $("#team-form").hidden = !admin;
    $("#team-admin-note").hidden = admin;
    $("#members-panel").hidden = !admin;
    $("#members-pager").hidden = true;
    $("#token-form").onsubmit = createOwnToken;
    $("#team-form").onsubmit = createTeam;
    $("#member-form").onsubmit = addMember;
    $("#members-prev").onclick = () => goToMembersPage(people.pages.index - 1);
    $("#members-next").onclick = () => goToMembersPage(people.pages.index + 1);
    // The members search and "Show disabled members" as they were left: an
    // admin handing on a leaving member's notebooks comes back to the same
    // list after each (an audit redid both every time).
    $("#members-search").value = people.kept.q;
    $("#members-search").oninput = searchMembers;
    $("#members-disabled").checked = people.kept.disabled;
    $("#members-disabled").onchange = showDisabled;
    people.pages = firstPage(people.kept.q);
    fillCeilingHints();
    loadTokens();
    if (admin) {
      loadMembersPage();
    }
    loadTeams();
    clearInterval(people.clock);
    people.clock = setInterval(() => refreshTimes($("#view-people")), TIMES_REFRESH_MS);
  },
  leave() {
    people.visit += 1; // answers still on their way are dropped
    people.kept = { q: $("#members-search").value.trim(), disabled: $("#members-disabled").checked };
    clearInterval(people.clock);
    closeDialogs();
    // A secret shown once is gone once the page is left.
    $("#token-secret").replaceChildren();
    $("#member-secret").replaceChildren();
  },
};
