// What the console knows between views: the signed-in member and the names
// behind ids (members, teams, workload configs) taken from `included`.

export const state = {
  me: null,
  members: new Map(),
  teams: new Map(),
  configs: new Map(),
};

export function absorb(included = {}) {
  for (const m of included.members || []) state.members.set(m.id, m);
  for (const t of included.teams || []) state.teams.set(t.id, t);
  for (const c of included.workloadConfigs || []) state.configs.set(c.id, c);
}

// Whether a member we know of is disabled: `disabled` in an `included`
// entry, `disabledAt` in a member object.
export const isDisabled = (m) => !!(m?.disabled || m?.disabledAt);

export function memberLabel(id) {
  if (!id) return "";
  if (state.me && id === state.me.id) return "you";
  const m = state.members.get(id);
  if (!m) return id;
  const name = m.name || m.email || id;
  return isDisabled(m) ? `${name} (disabled)` : name;
}

export const teamName = (id) => state.teams.get(id)?.name || id;

// What the signed-in member may do to a notebook, computed the way the API
// does (docs/api.md, Roles): owner; org admin; else the best role among the
// member's teams the notebook is shared with. The API still decides: this
// only keeps buttons that could only fail off the screen.
const TEAM_RANK = { viewer: 1, editor: 2, admin: 3 };
export function accessTo(nb) {
  const me = state.me;
  if (!me) return null;
  if (nb.memberId === me.id) return "owner";
  if (me.organizationAdmin) return "org_admin";
  let best = null;
  for (const { teamId, role } of me.teams || []) {
    if ((nb.teamIds || []).includes(teamId) && (TEAM_RANK[role] || 0) > (TEAM_RANK[best] || 0)) best = role;
  }
  return best;
}
// start, stop, update
export const canManage = (nb) => ["owner", "org_admin", "admin", "editor"].includes(accessTo(nb));
// delete, share with and unshare from teams
export const canAdminister = (nb) => ["owner", "org_admin", "admin"].includes(accessTo(nb));
export const configName = (id) => state.configs.get(id)?.name || id;

// Statuses that change by themselves soon: poll fast while any is shown.
export const TRANSITIONAL = new Set(["starting", "stopping"]);
export const STARTABLE = new Set(["stopped", "failed"]);
export const STOPPABLE = new Set(["starting", "running", "idle", "detached"]);
export const PROVISIONED = new Set(["running", "idle", "detached"]);

// Repeats `fn` (which returns true when it wants the fast rate) until
// stopped: every 2 s while something is in transition, every 10 s
// otherwise, and every 30 s while the tab is hidden; at once when the tab is
// shown again after a slow (hidden) wait, so what comes back into view is
// never up to 30 s old. `region`, if given, is aria-busy while a run is in
// flight (screen readers wait for the update), until the next is scheduled.
// An answer's Retry-After (`backoff`) pushes the next scheduled run back, up
// to MAX_BACKOFF_MS; a run asked for at once (after an action) still runs.
export const FAST_MS = 2000;
export const NORMAL_MS = 10000;
export const HIDDEN_MS = 30000;
export const MAX_BACKOFF_MS = 5 * 60_000;

export class Poller {
  constructor(fn, region = null) {
    this.fn = fn;
    this.region = region;
    this.timer = null;
    this.active = false;
    this.running = false;
    this.again = false;
    this.waiting = []; // resolved once a run that began after they asked has ended
    this.last = 0; // when the last run began
    this.delay = 0; // the wait before the next run
    this.notBefore = 0; // no scheduled run before this time (Retry-After)
    this.onVisibility = () => {
      if (!this.active || this.running || this.delay !== HIDDEN_MS) return;
      if (document.visibilityState !== "visible") return;
      // Shown again: the next run is due at the visible rate, now if overdue.
      clearTimeout(this.timer);
      this.delay = NORMAL_MS;
      this.timer = setTimeout(() => this.now(), Math.max(0, this.last + NORMAL_MS - Date.now(), this.untilAllowed()));
    };
  }

  // The server asked to wait `ms` (Retry-After): called by `fn` in its run.
  backoff(ms) {
    this.notBefore = Date.now() + Math.min(ms, MAX_BACKOFF_MS);
  }

  untilAllowed() {
    return Math.max(0, this.notBefore - Date.now());
  }

  start() {
    this.active = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.now();
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
    this.region?.removeAttribute("aria-busy");
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.release();
  }

  release() {
    const waiting = this.waiting;
    this.waiting = [];
    waiting.forEach((done) => done());
  }

  // Run now (or right after the run under way, which began before whatever
  // changed): resolves once a run that began after this call has drawn.
  async now() {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return new Promise((done) => this.waiting.push(done));
    }
    clearTimeout(this.timer);
    this.running = true;
    this.region?.setAttribute("aria-busy", "true");
    this.last = Date.now();
    let fast = false;
    try {
      fast = await this.fn();
    } catch {
      // fn shows its own errors; keep polling so the view recovers by itself.
    } finally {
      this.running = false;
    }
    if (!this.active) return this.release();
    if (this.again) {
      this.again = false;
      const waiting = this.waiting; // asked during this run: answered by the next
      this.waiting = [];
      await this.now();
      waiting.forEach((done) => done());
      return;
    }
    const hidden = document.visibilityState !== "visible";
    this.delay = Math.max(fast ? FAST_MS : hidden ? HIDDEN_MS : NORMAL_MS, this.untilAllowed());
    this.timer = setTimeout(() => this.now(), this.delay);
    this.region?.removeAttribute("aria-busy");
  }
}
