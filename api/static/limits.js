// The organization's own running limits, on the Usage page for its org
// admins (GET/PATCH /organization, docs/console.md "Running limits"): what
// runs at once, beside what ran.

import { api } from "./api.js";
import { $, announce, setBusy, showError } from "./dom.js";

const MAX_LIMIT = 10000;

// What the operator allows, under a field: the ceiling an organization's own
// limit cannot lift.
function platformHint(limit) {
  return limit ? `The platform allows at most ${limit}; a higher number here changes nothing.` : "The platform sets no limit.";
}

function show(org) {
  const form = $("#limits-form");
  form.perMember.value = String(org.maxRunningPerMember);
  form.org.value = String(org.maxRunning);
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

async function save(ev) {
  ev.preventDefault();
  const form = $("#limits-form");
  const error = $("#limits-error");
  const perMember = limitOf(form.perMember);
  const org = limitOf(form.org);
  const bad = perMember === null ? form.perMember : org === null ? form.org : null;
  if (bad) {
    showError(error, { detail: `Enter a whole number from 0 to ${MAX_LIMIT} (0: no limit).` });
    bad.focus();
    return;
  }
  const submit = $("#limits-submit");
  setBusy(submit, true);
  try {
    show(await api.setOrganizationLimits({ maxRunningPerMember: perMember, maxRunning: org }));
    showError(error, null);
    announce("Running limits saved");
  } catch (err) {
    showError(error, err, "Could not save the limits");
  } finally {
    setBusy(submit, false);
  }
}

// Shown to org admins once read; a failure says so in the panel.
export async function loadLimits(isCurrent) {
  const panel = $("#limits-panel");
  $("#limits-form").onsubmit = save;
  showError($("#limits-error"), null);
  try {
    const org = await api.organization();
    if (!isCurrent()) return;
    show(org);
  } catch (err) {
    if (!isCurrent()) return;
    showError($("#limits-error"), err, "Could not read the limits");
  }
  panel.hidden = false;
}
