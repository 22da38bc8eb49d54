// The organization's caps on its notebooks' timeouts (GET /organization,
// docs/console.md "Limits"): what the create and edit dialogs allow,
// and the timeout that applies on a notebook's page. The API refuses a
// timeout past a cap and the reconciler applies the cap to one set before
// it; the console only says so ahead.

import { api } from "./api.js";
import { formatTimeout } from "./dom.js";

// In seconds, 0 being no cap; as last read. `defaultIdle`/`defaultDetached`:
// the organization's own default for a new notebook's timeout (null: the
// platform's). `trashDays`: how long a deleted notebook can be brought back
// (0: not at all; null: not read yet).
// `platform`: what a new notebook gets where the organization sets none
// (GET /organization says it; these until it is read).
export const caps = { idle: 0, detached: 0, defaultIdle: null, defaultDetached: null, trashDays: null, platform: { idle: 3600, detached: 14400 } };
let readAt = 0;
const MAX_AGE_MS = 30_000;

// The timeout that applies: a notebook's own under the cap (0 is never for
// a timeout, no cap for a cap), as common/durations.py `capped`.
export function capped(seconds, cap) {
  if (!cap) return seconds;
  return seconds === 0 ? cap : Math.min(seconds, cap);
}

export function absorbOrganization(org) {
  caps.idle = org.maxIdleTimeoutSeconds || 0;
  caps.detached = org.maxDetachedTimeoutSeconds || 0;
  caps.defaultIdle = org.defaultIdleTimeoutSeconds ?? null;
  caps.defaultDetached = org.defaultDetachedTimeoutSeconds ?? null;
  // (An API from before this release says neither: the defaults it applies.)
  caps.platform = { idle: org.platformDefaultIdleTimeoutSeconds ?? 3600, detached: org.platformDefaultDetachedTimeoutSeconds ?? 14400 };
  caps.trashDays = org.trashDays ?? null;
  readAt = Date.now();
}

// Read again once older than MAX_AGE_MS, or now with `force`; a failure
// keeps what was read (the API still decides). Whether what is kept is a
// fresh read.
export async function refreshCaps({ force = false } = {}) {
  if (!force && Date.now() - readAt < MAX_AGE_MS) return true;
  try {
    absorbOrganization(await api.organization());
    return true;
  } catch {
    return false; // kept as they were; the next read tries again
  }
}

// The timeout a new notebook gets without one (`kind`: "idle" or
// "detached"): its organization's default, else the platform's, capped, as
// the API gives it.
export function newTimeout(kind) {
  const own = kind === "idle" ? caps.defaultIdle : caps.defaultDetached;
  return capped(own ?? caps.platform[kind], caps[kind]);
}

// A notebook's timeout as it applies, naming the cap when that, not the
// notebook's own, is what stops it.
export function timeoutText(seconds, cap) {
  const applies = capped(seconds, cap);
  if (applies === seconds) return formatTimeout(seconds);
  return `${formatTimeout(applies)}, your organization's limit (its own: ${formatTimeout(seconds)})`;
}

// What the dialogs say of the caps under their timeout fields; "" when none.
export function capsHint() {
  const parts = [];
  if (caps.idle) parts.push(`idle at most ${formatTimeout(caps.idle)}`);
  if (caps.detached) parts.push(`detached at most ${formatTimeout(caps.detached)}`);
  if (!parts.length) return "";
  return `Your organization's limits: ${parts.join(", ")} (0, never, is not allowed there).`;
}
