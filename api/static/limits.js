// The organization's own limits, on the Usage page for its org admins
// (GET/PATCH /organization, docs/console.md "Limits"): what runs at once,
// and how long a notebook may be left open, beside what ran.

import { api } from "./api.js";
import { absorbOrganization, caps } from "./caps.js";
import { $, announce, formatTime, setBusy, showError } from "./dom.js";

const MAX_LIMIT = 10000;
// A cap's range, in the form's unit (minutes): 0 (none), or a timeout's own.
const CAP_MINUTES = { min: 5, max: 10080 };

// What the operator allows, under a field: the ceiling an organization's own
// limit cannot lift.
function platformHint(limit) {
  return limit ? `The platform allows at most ${limit}; a higher number here changes nothing.` : "The platform sets no limit.";
}

// The limits as last read: Save sends only what the admin changed from
// them, so it never puts back a limit another admin changed meanwhile.
let shown = null;

function show(org) {
  const form = $("#limits-form");
  shown = org;
  form.perMember.value = String(org.maxRunningPerMember);
  form.org.value = String(org.maxRunning);
  form.idleCap.value = String(org.maxIdleTimeoutSeconds / 60);
  form.detachedCap.value = String(org.maxDetachedTimeoutSeconds / 60);
  absorbOrganization(org);
  // Empty: the platform's (the placeholder says it).
  form.idleDefault.placeholder = String(caps.platform.idle / 60);
  form.detachedDefault.placeholder = String(caps.platform.detached / 60);
  form.idleDefault.value = org.defaultIdleTimeoutSeconds == null ? "" : String(org.defaultIdleTimeoutSeconds / 60);
  form.detachedDefault.value = org.defaultDetachedTimeoutSeconds == null ? "" : String(org.defaultDetachedTimeoutSeconds / 60);
  // Who last changed them: what a member whose notebook a cap stopped asks.
  const changed = $("#limits-changed");
  changed.hidden = !org.updatedAt;
  if (org.updatedAt) {
    changed.replaceChildren("Last changed ", formatTime(org.updatedAt), ` by ${org.updatedByName}.`);
  }
  $("#limit-member-platform").textContent = platformHint(org.platformMaxRunningPerMember);
  $("#limit-org-platform").textContent = platformHint(org.platformMaxRunning);
}

// A whole number from 0 to MAX_LIMIT, else null.
function limitOf(input) {
  const text = input.value.trim();
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return n <= MAX_LIMIT ? n : null;
}

// A cap in seconds from its minutes (0, or CAP_MINUTES), else null.
function capOf(input) {
  const text = input.value.trim();
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return n === 0 || (n >= CAP_MINUTES.min && n <= CAP_MINUTES.max) ? n * 60 : null;
}

// A default in seconds from its minutes: null when empty (the platform's),
// else as a cap (0 being never); undefined when out of range.
function defaultOf(input) {
  // Not a number to the browser ("-", "1e"): it says "", which is not "empty".
  if (input.validity.badInput) return undefined;
  if (input.value.trim() === "") return null;
  return capOf(input) ?? undefined;
}

async function save(ev) {
  ev.preventDefault();
  const form = $("#limits-form");
  const error = $("#limits-error");
  const perMember = limitOf(form.perMember);
  const org = limitOf(form.org);
  const idleCap = capOf(form.idleCap);
  const detachedCap = capOf(form.detachedCap);
  const bad = perMember === null ? form.perMember : org === null ? form.org : null;
  if (bad) {
    showError(error, { detail: `Enter a whole number from 0 to ${MAX_LIMIT} (0: no limit).` });
    bad.focus();
    return;
  }
  const badCap = idleCap === null ? form.idleCap : detachedCap === null ? form.detachedCap : null;
  if (badCap) {
    const { min, max } = CAP_MINUTES;
    showError(error, { detail: `Enter 0 (no limit) or ${min} to ${max} minutes.` });
    badCap.focus();
    return;
  }
  const idleDefault = defaultOf(form.idleDefault);
  const detachedDefault = defaultOf(form.detachedDefault);
  const badDefault = idleDefault === undefined ? form.idleDefault : detachedDefault === undefined ? form.detachedDefault : null;
  if (badDefault) {
    const { min, max } = CAP_MINUTES;
    showError(error, { detail: `Enter 0 (never), ${min} to ${max} minutes, or nothing for the platform's.` });
    badDefault.focus();
    return;
  }
  const changed = {};
  if (perMember !== shown.maxRunningPerMember) changed.maxRunningPerMember = perMember;
  if (org !== shown.maxRunning) changed.maxRunning = org;
  if (idleCap !== shown.maxIdleTimeoutSeconds) changed.maxIdleTimeoutSeconds = idleCap;
  if (detachedCap !== shown.maxDetachedTimeoutSeconds) changed.maxDetachedTimeoutSeconds = detachedCap;
  if (idleDefault !== shown.defaultIdleTimeoutSeconds) changed.defaultIdleTimeoutSeconds = idleDefault;
  if (detachedDefault !== shown.defaultDetachedTimeoutSeconds) changed.defaultDetachedTimeoutSeconds = detachedDefault;
  const submit = $("#limits-submit");
  setBusy(submit, true);
  try {
    show(await api.setOrganizationLimits(changed));
    showError(error, null);
    announce("Limits saved");
  } catch (err) {
    showError(error, err, "Could not save the limits");
  } finally {
    setBusy(submit, false);
  }
}

// Shown to org admins once read; a failure says so in the panel, with no
// form (what it would show is not what is set).
export async function loadLimits(isCurrent) {
  const form = $("#limits-form");
  form.onsubmit = save;
  showError($("#limits-error"), null);
  let org = null;
  try {
    org = await api.organization();
  } catch (err) {
    if (!isCurrent()) return;
    showError($("#limits-read-error"), err, "Could not read the limits");
  }
  if (!isCurrent()) return; // left, or no longer an org admin
  if (org) {
    showError($("#limits-read-error"), null);
    show(org);
  }
  form.hidden = !org;
  if (!org) $("#limits-changed").hidden = true; // not a read from an earlier visit
  $("#limits-panel").hidden = false;
}
