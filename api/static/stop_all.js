// Stopping every running notebook at once (org admins; docs/api.md
// "Stopping everything"): beside the list's Owner filter, the organization's
// (Anyone) or that owner's. Each stops as its owner's Stop would (what was
// typed last is saved first); asked first.

import { confirmThen } from "./actions.js";
import { api } from "./api.js";
import { $ } from "./dom.js";
import { memberLabel, state } from "./store.js";

// The button for `ownerId` ("" : everyone's); not beside a team filter,
// which it would seem to follow; `done(count)` after a stop.
export function showStopAll(ownerId, teamId, done) {
  const button = $("#stop-all");
  button.hidden = !state.me?.organizationAdmin || !!teamId;
  if (button.hidden) return;
  const whose = ownerId ? `${memberLabel(ownerId)}'s` : "the organization's";
  button.setAttribute("aria-label", `Stop all of ${whose} running notebooks`);
  button.onclick = (ev) => {
    let stopped = 0;
    confirmThen({
      trigger: ev.currentTarget,
      title: "Stop every running notebook?",
      text: `Every starting, running, idle or detached notebook of ${ownerId ? memberLabel(ownerId) : "the organization"} stops, as its owner's Stop would: what was typed last is saved first, and members with one open see it stop. Each notebook's history says you asked.`,
      action: "Stop them all",
      context: "Could not stop them",
      run: async () => {
        stopped = (await api.stopAllNotebooks(ownerId ? { memberId: ownerId } : {})).stopped;
      },
      after: () => done(stopped),
    });
  };
}
