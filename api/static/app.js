// The console's entry point: sign-in with a pasted token, then hash routes
//   #/notebooks            the list
//   #/notebooks/{id}       one notebook, its teams
//   #/notebooks/{id}/open  the notebook itself, in an iframe
//   #/configs              workload configs
//   #/people               your tokens, teams and their members, and (org
//                          admins) the organization's members
//   #/activity[/{member}]  (org admins) every notebook's history, or what
//                          one member (or "reconciler") did
//   #/activity/notebook/{id}  (org admins) a deleted notebook's history
//   #/deleted              recently deleted notebooks, to bring back
//   #/usage                (org admins) how long notebooks ran, by owner
//   #/webhooks             (org admins) URLs told of status changes
//   #/audit[/{member}]     (org admins) who changed members, tokens, teams,
//                          configs, limits, webhooks
//   #/code[?q=…]           text in the code of the notebooks one may see
// Everything goes through the public REST API (api.js); no build step.

import { activityView } from "./activity.js";
import { auditView } from "./audit.js";
import { codeView } from "./code.js";
import { ApiError, api, onUnauthorized, token } from "./api.js";
import { configsView } from "./configs.js";
import { $, focusHeading, setBusy, showAdminNav, showError } from "./dom.js";
import { detailView, listView } from "./notebooks.js";
import { openView } from "./open.js";
import { peopleView, setSignOut } from "./people.js";
import { state } from "./store.js";
import { trashView } from "./trash.js";
import { usageView } from "./usage.js";
import { webhooksView } from "./webhooks.js";

const signinView = { el: () => $("#view-signin"), enter() {}, leave() {} };
// A token is kept but who it belongs to could not be read (not a 401).
const retryView = { el: () => $("#view-retry"), enter() {}, leave() {} };
// Why the last page signed out (a 401), for the sign-in page after the reload.
const SIGNED_OUT_KEY = "notebooks.signedOut";

let current = null;
// The token this page signed in with: another one in storage (or none) means
// this page is stale, e.g. restored from the back/forward cache.
let signedInWith = null;

// A segment that is not valid percent-encoding (a hand-edited `%E0`) is
// taken as it is: the view then says "not found" instead of routing dying.
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

// Only `#/…` (or no hash) is a route: `#main`, the skip link's target, is not.
const isRoute = (hash) => hash === "" || hash === "#" || hash.startsWith("#/");

function resolve(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?"); // a route's own parameters (#/code?q=…)
  const query = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
  const parts = (cut < 0 ? raw : raw.slice(0, cut)).split("/").filter(Boolean).map(decoded);
  if (parts[0] === "configs") return [configsView, {}, "configs"];
  if (parts[0] === "people") return [peopleView, {}, "people"];
  if (parts[0] === "activity" && parts[1] === "notebook" && parts[2]) {
    return [activityView, { notebook: parts[2] }, "activity"];
  }
  if (parts[0] === "activity") return [activityView, { actor: parts[1] || null }, "activity"];
  if (parts[0] === "audit") return [auditView, { actor: parts[1] || null }, "audit"];
  if (parts[0] === "code") return [codeView, { q: query.get("q") || "" }, "notebooks"];
  if (parts[0] === "usage") return [usageView, {}, "usage"];
  if (parts[0] === "webhooks") return [webhooksView, {}, "webhooks"];
  if (parts[0] === "deleted") return [trashView, {}, "notebooks"];
  if (parts[0] === "notebooks" && parts[1] && parts[2] === "open") {
    return [openView, { id: parts[1] }, "notebooks"];
  }
  if (parts[0] === "notebooks" && parts[1]) return [detailView, { id: parts[1] }, "notebooks"];
  return [listView, {}, "notebooks"];
}

// Each page's own title before the console's name, so tabs and history say
// which page; a notebook's page and open view put the notebook's name there
// once it has loaded (until then the neutral "Notebook", never the name of
// the one shown before).
const TITLES = new Map([
  [signinView, "Sign in"],
  [retryView, "Could not load the console"],
  [configsView, "Workload configs"],
  [peopleView, "People"],
  [activityView, "Activity"],
  [auditView, "Audit"],
  [codeView, "Search notebooks' code"],
  [usageView, "Usage"],
  [webhooksView, "Webhooks"],
  [trashView, "Recently deleted"],
  [detailView, "Notebook"],
  [openView, "Notebook"],
]);

function show(view, params = {}, section = null, { focus = true } = {}) {
  if (current) current.leave();
  document.querySelectorAll("main > .view").forEach((el) => {
    el.hidden = true;
  });
  current = view;
  const el = view.el();
  el.hidden = false;
  document.body.dataset.view = el.id;
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.title = TITLES.has(view) ? `${TITLES.get(view)} · Notebooks` : "Notebooks";
  view.enter(params);
  if (focus) focusHeading(el);
}

function route({ focus = true } = {}) {
  if (!state.me) {
    // With a token kept, the member is signed in: `GET /me` is on its way
    // or failed (the retry page), and asking for a token again would only
    // make a second console token beside this one.
    if (!token.get()) showSignin();
    return;
  }
  const [view, params, section] = resolve(location.hash);
  show(view, params, section, { focus });
}

// The member's teams and roles decide which buttons show: read them again on
// every navigation (a 401 here signs out like any other).
async function refreshMe() {
  try {
    const me = await api.me();
    if (state.me && me.id === state.me.id) {
      state.me = me;
      showNav(me);
    }
  } catch {
    // A network error leaves things as they are; the next navigation retries.
  }
}

// Sign out: forget the token and everything else the console stored, then
// load the page afresh. A new document is the one sure way that no view,
// timer, request in flight, notebook frame (and its Marimo WebSocket), name
// or id of this member survives into the sign-in page. The URL loses its
// route, so whoever signs in next starts on the list.
// The console never keeps the token pasted in: it signs in with a token of
// its own that ends after 12 h (the proxy cookie's life) and that signing out
// revokes, which also ends, in the proxy, every notebook session opened from
// this tab (docs/console.md, "Signing in").
const CONSOLE_TOKEN = { name: "console sign-in", expiresInSeconds: 12 * 3600 };
const REVOKE_WAIT_MS = 3000;

async function revokeOwnToken() {
  const id = token.id();
  if (!id || !state.me) return;
  const revoked = api.revokeToken(state.me.id, id).catch(() => {}); // gone already: fine
  await Promise.race([revoked, new Promise((r) => setTimeout(r, REVOKE_WAIT_MS))]);
}

async function signOut(reason) {
  if (current) current.leave(); // the frame and timers go at once
  document.body.hidden = true;
  if (!reason) await revokeOwnToken(); // after a 401 there is nothing left to revoke
  token.clear();
  if (reason) sessionStorage.setItem(SIGNED_OUT_KEY, reason);
  location.replace(location.pathname);
}

function showSignedIn(me) {
  signedInWith = token.get();
  state.me = me;
  $("#who-name").textContent = me.name || me.email || me.id;
  $("#who-name").title = me.name || me.email || me.id; // the whole of a long one
  $("#who").hidden = false;
  showNav(me);
}

function showNav(me) {
  $("#nav").hidden = false;
  showAdminNav(me.organizationAdmin);
}

function showSignin(error) {
  state.me = null;
  $("#who").hidden = true;
  $("#nav").hidden = true;
  show(signinView, {}, null, { focus: false });
  showError($("#signin-error"), error || null);
  $("#token-input").focus();
}

// Read who the kept token belongs to, then show the page the URL names. A
// 401 signs out (onUnauthorized, in boot); any other failure (the API or the
// network down, a 503) shows the retry page and keeps the token.
async function resume({ focus }) {
  try {
    showSignedIn(await api.me());
    route({ focus });
  } catch (err) {
    if (err.status !== 401) showRetry(err);
  }
}

function showRetry(error) {
  show(retryView, {}, null, { focus: false });
  showError($("#retry-error"), error, "Could not read who you are");
}

// Signing out from the retry page: who the token belongs to is unknown, so
// it cannot be revoked; it is forgotten, and ends by itself (12 h at most).
const SIGNED_OUT_UNREVOKED =
  "Signed out of this tab. The API did not answer, so the console's token was not revoked: it ends by itself within 12 hours.";

function wireRetry() {
  $("#retry-signout").addEventListener("click", () => signOut(SIGNED_OUT_UNREVOKED));
  const retry = $("#retry");
  retry.addEventListener("click", async () => {
    setBusy(retry, true);
    await resume({ focus: true });
    setBusy(retry, false);
    if (!retryView.el().hidden) retry.focus(); // failed again: stay on Retry
  });
}

function wireSignin() {
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#token-input");
    const value = input.value.trim();
    const errorEl = $("#signin-error");
    if (!value) {
      showError(errorEl, { detail: "Paste an API token first." });
      input.focus();
      return;
    }
    // A header can carry only visible ASCII: a token pasted with quotes “…”,
    // an ellipsis or a line break would otherwise fail as "Cannot reach the API".
    if (!/^[\x21-\x7e]+$/.test(value)) {
      showError(errorEl, {
        detail: "That is not an API token: it has spaces, line breaks or characters such as “ ” or … in it. Copy the token alone (it starts with nbk_).",
      });
      input.select();
      return;
    }
    const submit = $("#signin-submit");
    submit.disabled = true;
    try {
      const me = await api.me(value);
      const own = await api.createToken(me.id, CONSOLE_TOKEN, value);
      token.set(own.token, own.id);
      input.value = "";
      showError(errorEl, null);
      showSignedIn(me);
      // Without a hashchange event: route() below is the one navigation.
      if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/notebooks");
      route();
    } catch (err) {
      // The sign-in makes a token of its own, which a read-only one may not.
      const readOnly = err.code === "read_only_token";
      showError(errorEl, readOnly ? { detail: "That token is read-only, for scripts: sign in with a token that is not read-only." } : err);
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  $("#sign-out").addEventListener("click", () => signOut());
}

// "Skip to content" moves focus to the page's main region, no more: its
// `#main` would otherwise be a navigation (a history entry, and a route).
function wireSkipLink() {
  $(".skip-link").addEventListener("click", (ev) => {
    ev.preventDefault();
    $("#main").focus();
  });
}

async function boot() {
  wireSignin();
  wireRetry();
  // Revoking this console's own token on the People page signs out the same
  // way a 401 does: nothing left to revoke, and the sign-in page says why.
  setSignOut((reason) => signOut(reason));
  onUnauthorized((err) => {
    // The token was revoked or expired, the member disabled, or it was never right.
    signOut(`Signed out: ${err.detail}`);
  });
  wireSkipLink();
  window.addEventListener("hashchange", () => {
    if (!isRoute(location.hash)) return; // not a page: nothing to show
    route();
    if (state.me) refreshMe();
  });
  // Back after signing out may bring this page back from the back/forward
  // cache with the member's views in it: load afresh instead.
  window.addEventListener("pageshow", (ev) => {
    if (ev.persisted && signedInWith !== token.get()) location.reload();
  });
  const reason = sessionStorage.getItem(SIGNED_OUT_KEY);
  sessionStorage.removeItem(SIGNED_OUT_KEY);
  if (!token.get()) return showSignin(reason ? new ApiError(401, { detail: reason }) : null);
  await resume({ focus: false });
}

boot();
