// The console's entry point: sign-in with a pasted token, then hash routes
//   #/notebooks            the list
//   #/notebooks/{id}       one notebook, its teams
//   #/notebooks/{id}/open  the notebook itself, in an iframe
//   #/configs              workload configs
// Everything goes through the public REST API (api.js); no build step.

import { ApiError, api, onUnauthorized, token } from "./api.js";
import { configsView } from "./configs.js";
import { $, focusHeading, showError } from "./dom.js";
import { detailView, listView } from "./notebooks.js";
import { openView } from "./open.js";
import { state } from "./store.js";

const signinView = { el: () => $("#view-signin"), enter() {}, leave() {} };

let current = null;

// A segment that is not valid percent-encoding (a hand-edited `%E0`) is
// taken as it is: the view then says "not found" instead of routing dying.
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function resolve(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decoded);
  if (parts[0] === "configs") return [configsView, {}, "configs"];
  if (parts[0] === "notebooks" && parts[1] && parts[2] === "open") {
    return [openView, { id: parts[1] }, "notebooks"];
  }
  if (parts[0] === "notebooks" && parts[1]) return [detailView, { id: parts[1] }, "notebooks"];
  return [listView, {}, "notebooks"];
}

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
  if (view !== openView && view !== detailView) document.title = "Notebooks";
  view.enter(params);
  if (focus) focusHeading(el);
}

function route({ focus = true } = {}) {
  if (!state.me) return showSignin();
  const [view, params, section] = resolve(location.hash);
  show(view, params, section, { focus });
}

function showSignedIn(me) {
  state.me = me;
  $("#who-name").textContent = me.name || me.email || me.id;
  $("#who").hidden = false;
  $("#nav").hidden = false;
}

function showSignin(error) {
  state.me = null;
  $("#who").hidden = true;
  $("#nav").hidden = true;
  show(signinView, {}, null, { focus: false });
  showError($("#signin-error"), error || null);
  $("#token-input").focus();
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
    const submit = $("#signin-submit");
    submit.disabled = true;
    try {
      const me = await api.me(value);
      token.set(value);
      input.value = "";
      showError(errorEl, null);
      showSignedIn(me);
      if (!location.hash || location.hash === "#/") location.hash = "#/notebooks";
      route();
    } catch (err) {
      showError(errorEl, err);
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  $("#sign-out").addEventListener("click", () => {
    token.clear();
    showSignin();
  });
}

async function boot() {
  wireSignin();
  onUnauthorized((err) => {
    // The token was revoked, the member disabled, or it was never right.
    token.clear();
    showSignin(new ApiError(401, { detail: `Signed out: ${err.detail}` }));
  });
  window.addEventListener("hashchange", () => route());
  if (!token.get()) return showSignin();
  try {
    showSignedIn(await api.me());
    route({ focus: false });
  } catch (err) {
    if (err.status !== 401) showSignin(err);
  }
}

boot();
