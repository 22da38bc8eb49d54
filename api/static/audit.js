// The organization's audit, for its org admins (#/audit): who
// added, changed or disabled a member, made or revoked a token, changed a
// team, a workload config, the limits or a webhook, newest first
// (docs/api.md "Audit"). A name shows what that member did alone
// (#/audit/{member}). Read again as the other views are (Poller); "Show
// older" pages by the API's marker (events.js).

import { api } from "./api.js";
import { $, formatTime, formatTimeout, h, showAdminNav, showError } from "./dom.js";
import { noHistory, olderShown, showHistory, takeLatest } from "./events.js";
import { Poller, absorb, memberLabel, state } from "./store.js";

const SHOWN = 50;
const view = { visit: 0, actor: null, poller: null, history: noHistory(), capped: false, reads: 0 };
const route = (actor) => (actor ? `#/audit/${encodeURIComponent(actor)}` : "#/audit");

const quoted = (name) => (name ? `“${name}”` : "");
// A member's name as the object of a sentence ("you" is the reader).
const whom = (id) => memberLabel(id);
const whose = (id) => (state.me && id === state.me.id ? "your" : `${memberLabel(id)}'s`);
// The limits and defaults an organization's admins set (docs/api.md
// "Running limits", "Timeout caps"): 0 is none (no limit, no cap, never).
const LIMITS = {
  maxRunningPerMember: ["running per member", (v) => (v === 0 ? "no limit of its own" : String(v))],
  maxRunning: ["running in all", (v) => (v === 0 ? "no limit of its own" : String(v))],
  maxIdleTimeoutSeconds: ["idle timeout cap", (v) => (v === 0 ? "no cap" : formatTimeout(v))],
  maxDetachedTimeoutSeconds: ["detached timeout cap", (v) => (v === 0 ? "no cap" : formatTimeout(v))],
  defaultIdleTimeoutSeconds: ["new notebooks' idle timeout", (v) => (v === null ? "the platform's" : v === 0 ? "never" : formatTimeout(v))],
  defaultDetachedTimeoutSeconds: ["new notebooks' detached timeout", (v) => (v === null ? "the platform's" : v === 0 ? "never" : formatTimeout(v))],
};

function limitsSet(detail) {
  const set = Object.entries(LIMITS).filter(([k]) => k in detail).map(([k, [label, say]]) => `${label}: ${say(detail[k])}`);
  return set.length ? `set ${set.join(", ")}` : "saved the organization's limits unchanged";
}

function memberUpdated(e) {
  const parts = [];
  if ("name" in e.detail) parts.push(`renamed ${whom(e.targetId)} ${quoted(e.detail.name)}`);
  if ("organizationAdmin" in e.detail) {
    parts.push(e.detail.organizationAdmin
      ? `made ${whom(e.targetId)} an organization admin`
      : `took organization admin from ${whom(e.targetId)}`);
  }
  return parts.join(" and ") || `saved ${whom(e.targetId)} unchanged`;
}

// What an entry says was done, after who did it ("Ann disabled Bo").
const SAID = {
  "member.added": (e) => `added ${whom(e.targetId)}`,
  "member.updated": memberUpdated,
  "member.disabled": (e) => `disabled ${whom(e.targetId)}`,
  "member.enabled": (e) => `enabled ${whom(e.targetId)} again`,
  "member.notebooks_handed_on": (e) =>
    `handed ${whose(e.targetId)} notebooks (${e.detail.handedOn ?? "?"}) on to ${whom(e.detail.memberId)}`,
  "token.created": (e) =>
    `made ${e.detail.readOnly ? "a read-only" : "a"} token ${quoted(e.detail.name)} for ${whom(e.detail.member)}`,
  "token.revoked": (e) => `revoked one of ${whose(e.detail.member)} tokens`,
  "team.created": (e) => `created the team ${quoted(e.detail.name)}`,
  "team.renamed": (e) => `renamed a team to ${quoted(e.detail.name)}`,
  "team.deleted": (e) => `deleted the team ${quoted(e.targetName) || e.targetId}`,
  "team.member_set": (e) => `made ${whom(e.targetId)} ${e.detail.role} of ${e.teamName || e.detail.team}`,
  "team.member_removed": (e) => `removed ${whom(e.targetId)} from ${e.teamName || e.detail.team}`,
  "workload_config.created": (e) => `created the workload config ${quoted(e.detail.name)}`,
  "workload_config.updated": (e) => `changed the workload config ${quoted(e.targetName) || e.targetId}: ${changed(e.detail)}`,
  "workload_config.deleted": (e) => `deleted the workload config ${quoted(e.targetName) || e.targetId}`,
  "organization.updated": (e) => limitsSet(e.detail),
  "organization.notebooks_stopped": (e) =>
    `stopped all of ${e.detail.memberId ? whose(e.detail.memberId) : "the organization's"} running notebooks (${e.detail.stopped ?? "?"})${e.detail.reason ? `: ${e.detail.reason}` : ""}`,
  "webhook.created": () => "added a webhook",
  "webhook.updated": (e) =>
    "enabled" in e.detail && e.detail.fields.length === 1
      ? `${e.detail.enabled ? "enabled" : "disabled"} a webhook`
      : `changed a webhook: ${changed(e.detail)}`,
  "webhook.deleted": () => "deleted a webhook",
  "webhook.secret_renewed": () => "gave a webhook a new secret",
};

// The fields an edit sent; a secret environment by its variables' names.
function changed(detail) {
  const fields = (detail.fields || []).flatMap((f) => {
    if (f !== "secretEnv") return [f];
    const set = detail.secretEnvNames || [];
    const removed = detail.secretEnvRemoved || [];
    return [set.length && `secret variables set: ${set.join(", ")}`, removed.length && `secret variables removed: ${removed.join(", ")}`].filter(Boolean);
  });
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
    capped: view.capped, // past 10,000 the API stops counting (totalCapped)
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
    if (visit !== view.visit || read !== view.reads) return false;
    if (err.status === 403) return refuse(); // no longer an org admin
    showError($("#audit-error"), err, "Could not load the audit");
    return false;
  }
  if (visit !== view.visit || read !== view.reads) return false;
  showError($("#audit-error"), null);
  absorb(page.included);
  view.history = takeLatest(view.history, page);
  view.capped = !!page.totalCapped;
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
