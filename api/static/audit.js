// The organization's audit, for its org admins (#/audit): who
// added, changed or disabled a member, made or revoked a token, changed a
// team, a workload config, the limits or a webhook, newest first
// (docs/api.md "Audit"). A name shows what that member did alone
// (#/audit/{member}). Read again as the other views are (Poller); "Show
// older" pages by the API's marker (events.js).

import { api } from "./api.js";
import { $, formatTime, h, showAdminNav, showError } from "./dom.js";
import { noHistory, olderShown, showHistory, takeLatest } from "./events.js";
import { Poller, absorb, memberLabel, state } from "./store.js";

const SHOWN = 50;
const view = { visit: 0, actor: null, poller: null, history: noHistory(), reads: 0 };
const route = (actor) => (actor ? `#/audit/${encodeURIComponent(actor)}` : "#/audit");

const quoted = (name) => (name ? `“${name}”` : "");
const yes = (flag) => (flag ? "yes" : "no");
const LIMITS = {
  maxRunningPerMember: "running per member",
  maxRunning: "running in all",
  maxIdleTimeoutSeconds: "idle timeout cap",
  maxDetachedTimeoutSeconds: "detached timeout cap",
  defaultIdleTimeoutSeconds: "default idle timeout",
  defaultDetachedTimeoutSeconds: "default detached timeout",
};
const shownLimit = (v) => (v === null ? "the platform's" : v === -1 ? "no limit" : String(v));

// What an entry says was done, after who did it ("Ann disabled Bo").
const SAID = {
  "member.added": (e) => `added ${memberLabel(e.targetId)}`,
  "member.updated": (e) =>
    "organizationAdmin" in e.detail
      ? `${e.detail.organizationAdmin ? "made" : "unmade"} ${memberLabel(e.targetId)} an organization admin`
      : `renamed ${memberLabel(e.targetId)} ${quoted(e.detail.name)}`,
  "member.disabled": (e) => `disabled ${memberLabel(e.targetId)}`,
  "member.enabled": (e) => `enabled ${memberLabel(e.targetId)} again`,
  "member.notebooks_handed_on": (e) => `handed ${memberLabel(e.targetId)}'s notebooks on to ${memberLabel(e.detail.memberId)}`,
  "token.created": (e) =>
    `made ${e.detail.readOnly ? "a read-only" : "a"} token ${quoted(e.detail.name)} for ${memberLabel(e.detail.member)}`,
  "token.revoked": (e) => `revoked a token of ${memberLabel(e.detail.member)}`,
  "team.created": (e) => `created the team ${quoted(e.detail.name)}`,
  "team.renamed": (e) => `renamed a team ${quoted(e.detail.name)}`,
  "team.deleted": (e) => `deleted the team ${quoted(e.targetName) || e.targetId}`,
  "team.member_set": (e) => `made ${memberLabel(e.targetId)} ${e.detail.role} of ${e.teamName || e.detail.team}`,
  "team.member_removed": (e) => `removed ${memberLabel(e.targetId)} from ${e.teamName || e.detail.team}`,
  "workload_config.created": (e) => `created the workload config ${quoted(e.detail.name)}`,
  "workload_config.updated": (e) => `changed the workload config ${quoted(e.targetName) || e.targetId}: ${changed(e.detail)}`,
  "workload_config.deleted": (e) => `deleted the workload config ${quoted(e.targetName) || e.targetId}`,
  "organization.updated": (e) =>
    `set ${Object.keys(LIMITS).filter((k) => k in e.detail).map((k) => `${LIMITS[k]}: ${shownLimit(e.detail[k])}`).join(", ")}`,
  "webhook.created": () => "added a webhook",
  "webhook.updated": (e) => `changed a webhook: ${changed(e.detail)}`,
  "webhook.deleted": () => "deleted a webhook",
  "webhook.secret_renewed": () => "gave a webhook a new secret",
};

// The fields an edit sent; a secret environment by its variables' names.
function changed(detail) {
  const fields = (detail.fields || []).map((f) =>
    f === "secretEnv" ? `secret variables ${(detail.secretEnvNames || []).join(", ")}` : f,
  );
  return fields.join(", ") || "nothing";
}

function entry(e) {
  const said = SAID[e.action]?.(e) || `${e.action} ${e.targetType} ${e.targetId}`;
  const actor = e.actor === view.actor
    ? h("span", { text: memberLabel(e.actor) })
    : h("a", { href: route(e.actor), title: `Only what ${memberLabel(e.actor)} did`, dataset: { focusKey: `who:${e.id}` }, text: memberLabel(e.actor) });
  return h("li", { dataset: { auditId: e.id, action: e.action } }, formatTime(e.createdAt), " ", actor, ` ${said}`);
}

function render() {
  showHistory($("#audit-list"), view.history, {
    entry,
    empty: view.actor ? "Nothing done yet." : "Nothing yet: no member, team, config, limit or webhook has been changed.",
    more: $("#audit-more"),
    older: $("#audit-older"),
  });
}

function showFilter() {
  $("#audit-title").textContent = view.actor ? `Audit: what ${memberLabel(view.actor)} changed` : "Audit";
  $("#audit-filter").hidden = !view.actor;
}

async function refresh() {
  const { visit, actor } = view;
  const read = ++view.reads; // a later read's answer wins
  let page;
  try {
    page = await api.audit({ limit: SHOWN, actor });
  } catch (err) {
    if (visit !== view.visit) return false;
    if (err.status === 403) return refuse(); // no longer an org admin
    showError($("#audit-error"), err, "Could not load the audit");
    return false;
  }
  if (visit !== view.visit || read !== view.reads) return false;
  showError($("#audit-error"), null);
  absorb(page.included);
  view.history = takeLatest(view.history, page);
  showFilter();
  render();
  return false;
}

function refuse() {
  view.poller?.stop();
  view.history = noHistory();
  $("#audit-list").replaceChildren();
  $("#audit-more").hidden = true;
  $("#audit-older").hidden = true;
  showAdminNav(false);
  showError($("#audit-error"), { detail: "Only organization admins see the organization's audit." });
  return false;
}

async function showOlder(ev) {
  const button = ev.currentTarget;
  const { visit, history, actor } = view;
  button.disabled = true;
  let page;
  try {
    page = await api.audit({ limit: SHOWN, actor, marker: history.marker });
  } catch (err) {
    if (visit === view.visit) showError($("#audit-error"), err, "Could not load older entries");
    return;
  } finally {
    button.disabled = false;
  }
  if (visit !== view.visit || view.history !== history) return; // something new came meanwhile
  absorb(page.included);
  history.older.push(...page.items);
  history.marker = page.marker || null;
  render();
  olderShown(page.items.length, button, $("#audit-title"));
}

export const auditView = {
  el: () => $("#view-audit"),
  enter({ actor = null }) {
    view.visit += 1;
    view.actor = actor;
    view.history = noHistory();
    $("#audit-list").replaceChildren();
    $("#audit-more").hidden = true;
    $("#audit-older").hidden = true;
    $("#audit-older").onclick = showOlder;
    showError($("#audit-error"), null);
    showFilter();
    if (!state.me?.organizationAdmin) {
      refuse();
      return;
    }
    view.poller = new Poller(refresh, $("#audit-list"));
    view.poller.start();
  },
  leave() {
    view.visit += 1; // answers on their way are dropped
    view.poller?.stop();
    view.poller = null;
  },
};
