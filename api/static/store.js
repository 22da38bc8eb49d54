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

export function memberLabel(id) {
  if (!id) return "";
  if (state.me && id === state.me.id) return "you";
  const m = state.members.get(id);
  return m ? m.name || m.email || id : id;
}

export const teamName = (id) => state.teams.get(id)?.name || id;
export const configName = (id) => state.configs.get(id)?.name || id;

// Statuses that change by themselves soon: poll fast while any is shown.
export const TRANSITIONAL = new Set(["starting", "stopping"]);
export const STARTABLE = new Set(["stopped", "failed"]);
export const STOPPABLE = new Set(["starting", "running", "idle", "detached"]);
export const PROVISIONED = new Set(["running", "idle", "detached"]);

// Repeats `fn` (which returns true when it wants the fast rate) until
// stopped: every 2 s while something is in transition, every 10 s
// otherwise, and every 30 s while the tab is hidden.
export class Poller {
  constructor(fn) {
    this.fn = fn;
    this.timer = null;
    this.active = false;
    this.running = false;
    this.again = false;
  }

  start() {
    this.active = true;
    this.now();
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
  }

  async now() {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = true;
    let fast = false;
    try {
      fast = await this.fn();
    } catch {
      // fn shows its own errors; keep polling so the view recovers by itself.
    } finally {
      this.running = false;
    }
    if (!this.active) return;
    if (this.again) {
      this.again = false;
      this.now();
      return;
    }
    const hidden = document.visibilityState !== "visible";
    const delay = fast ? 2000 : hidden ? 30000 : 10000;
    this.timer = setTimeout(() => this.now(), delay);
  }
}
