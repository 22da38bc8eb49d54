// A thin client for the public REST API (DESIGN §5), same origin as the page.
// Every failure becomes an ApiError carrying the API's own problem+json
// `detail`, so callers can show it verbatim instead of a generic message.

const BASE = "/api/v1";
const PREFIX = "notebooks.";
const TOKEN_KEY = `${PREFIX}token`;
const TOKEN_ID_KEY = `${PREFIX}tokenId`;

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem.detail || problem.title || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = problem.code || "";
    this.title = problem.title || "";
    this.detail = detail;
  }
}

// The API's own "no such thing (for you)": its problem code, so that a 404 or
// 403 page from something in front of the API (an ingress during a deploy)
// is shown as an error and not taken for a notebook or team gone.
export function notFound(err) {
  return err?.status === 404 && err.code === "not_found";
}

export function refused(err) {
  return notFound(err) || (err?.status === 403 && err.code === "forbidden");
}

// The console's own sign-in token (minted at sign-in, see app.js) and its id,
// so that signing out can revoke it.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  id: () => sessionStorage.getItem(TOKEN_ID_KEY),
  set: (value, id) => {
    sessionStorage.setItem(TOKEN_KEY, value);
    sessionStorage.setItem(TOKEN_ID_KEY, id);
  },
  // Everything the console ever put in this origin's storage, the token first.
  clear: () => {
    for (const store of [sessionStorage, localStorage]) {
      for (const key of Object.keys(store)) {
        if (key.startsWith(PREFIX)) store.removeItem(key);
      }
    }
  },
};

// Listeners told about a 401 (the console then asks for a token again).
const unauthorizedListeners = [];
export function onUnauthorized(fn) {
  unauthorizedListeners.push(fn);
}

// Reason phrases for when the answer carries none (HTTP/2 has no status text).
const REASONS = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  413: "Content Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

// "HTTP 502 Bad Gateway": what is shown for an answer that is not the API's
// problem+json (a load balancer's or proxy's own page). Its body, often
// HTML, is never shown: its source means nothing to the member.
function statusLine(response) {
  const reason = response.statusText || REASONS[response.status] || "";
  return reason ? `HTTP ${response.status} ${reason}` : `HTTP ${response.status}`;
}

async function problemFrom(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body broke off: the status line says enough.
  }
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && !Array.isArray(body)) {
      return body.detail || body.title ? body : { ...body, detail: statusLine(response) };
    }
  } catch {
    // Not JSON: fall through.
  }
  return { detail: statusLine(response) };
}

// `Retry-After` (a 429 or 503) in milliseconds: delay-seconds or an HTTP
// date; 0 when absent or unreadable. Pollers cap it (store.js).
function retryAfterMs(value) {
  if (!value) return 0;
  const ms = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

// How long a request may take before the console calls it failed. A read is
// repeated by the next poll; a write outlasts the API's own limits (a pooled
// connection's wait, 10 s, then a statement's, 30 s), since the API finishes
// it even after the console gave up: an error for a write that was made
// (a token whose secret is never shown) would be worse than the wait.
const READ_TIMEOUT_MS = 15_000;
const WRITE_TIMEOUT_MS = 60_000;

// `raw`: a success is not JSON but a file, answered as `{ blob, headers }`.
export async function request(method, path, body, { tokenOverride, raw = false } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json, application/problem+json" };
  const bearer = tokenOverride ?? token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  // A hung API (or something in front of it) must not leave a page stale
  // and a button busy for ever: past the limit the request is an error
  // like any other. A plain timer, so Playwright's clock runs it in tests.
  const write = method !== "GET" && method !== "HEAD";
  const limit = write ? WRITE_TIMEOUT_MS : READ_TIMEOUT_MS;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), limit);
  init.signal = abort.signal;
  try {
    const response = await fetch(BASE + path, init);
    if (raw && response.ok) return { blob: await response.blob(), headers: response.headers };
    return await answerOf(response, tokenOverride);
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (abort.signal.aborted) {
      const after = write ? " It may still have been done: look again before you repeat it." : "";
      throw new ApiError(0, { detail: `The API did not answer within ${limit / 1000} s.${after}` });
    }
    throw new ApiError(0, { detail: `Cannot reach the API: ${err.message}` });
  } finally {
    clearTimeout(timer);
  }
}

async function answerOf(response, tokenOverride) {
  if (!response.ok) {
    const error = new ApiError(response.status, await problemFrom(response));
    error.retryAfterMs = retryAfterMs(response.headers.get("Retry-After"));
    if (response.status === 401 && tokenOverride === undefined) {
      unauthorizedListeners.forEach((fn) => fn(error));
    }
    throw error;
  }
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch (err) {
    if (err.name === "AbortError") throw err; // the time limit, said by request()
    // A success that is not JSON (a page from something in front of the
    // API): say so, without the page's source that a parse error quotes.
    throw new ApiError(response.status, { detail: `${statusLine(response)}: the answer is not the API's JSON` });
  }
}

const enc = encodeURIComponent;

// Follow `marker` until the last page, for the short organization-wide lists
// (teams, workload configs, a notebook's teams, a member's tokens, a team's
// members, every member for the team picker). Notebooks, and the members
// table, are paged instead.
async function all(path) {
  const items = [];
  const included = { notebooks: [], teams: [], workloadConfigs: [], members: [] };
  let marker = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await request("GET", marker ? `${path}${sep}marker=${enc(marker)}` : path);
    items.push(...(page.items || []));
    for (const [kind, list] of Object.entries(page.included || {})) {
      included[kind] = (included[kind] || []).concat(list);
    }
    marker = page.marker || null;
  } while (marker);
  return { items, included };
}

function withWindow(path, { from, to } = {}) {
  const query = new URLSearchParams();
  if (from) query.set("from", from);
  if (to) query.set("to", to);
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

export const api = {
  me: (tokenOverride) => request("GET", "/me", undefined, { tokenOverride }),
  createToken: (memberId, body, tokenOverride) =>
    request("POST", `/members/${enc(memberId)}/tokens`, body, { tokenOverride }),
  // With the token named explicitly, a 401 here does not sign out (again).
  revokeToken: (memberId, tokenId) =>
    request("DELETE", `/members/${enc(memberId)}/tokens/${enc(tokenId)}`, undefined, {
      tokenOverride: token.get(),
    }),
  // One page of notebooks (newest first), everything the member can see or
  // those shared with one team; `marker` is the one the previous page gave.
  listNotebooks: ({ limit, marker, teamId, status, owner, q } = {}) => {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set("limit", String(limit));
    if (marker) query.set("marker", marker);
    if (status) query.set("status", status);
    if (q) query.set("q", q); // a name search
    if (owner) query.set("owner", owner); // the organization's list only, not a team's
    const path = teamId ? `/workloads/teams/${enc(teamId)}/notebooks` : "/workloads/notebooks";
    const qs = query.toString();
    return request("GET", qs ? `${path}?${qs}` : path);
  },
  describeNotebook: (id) => request("GET", `/workloads/notebooks/${enc(id)}`),
  createNotebook: (body) => request("POST", "/workloads/notebooks", body),
  updateNotebook: (id, body) => request("PATCH", `/workloads/notebooks/${enc(id)}`, body),
  deleteNotebook: (id) => request("DELETE", `/workloads/notebooks/${enc(id)}`),
  startNotebook: (id) => request("POST", `/workloads/notebooks/${enc(id)}/start`),
  stopNotebook: (id) => request("POST", `/workloads/notebooks/${enc(id)}/stop`),
  openNotebook: (id) => request("POST", `/workloads/notebooks/${enc(id)}/open`),
  pingNotebook: (id) => request("POST", `/workloads/notebooks/${enc(id)}/ping`),
  // The copy of its file the platform keeps (download.js).
  notebookFile: (id, version) =>
    request("GET", `/workloads/notebooks/${enc(id)}/file${version ? `?version=${enc(version)}` : ""}`, undefined, { raw: true }),
  notebookFileVersions: (id) => request("GET", `/workloads/notebooks/${enc(id)}/file/versions`),
  forgetFileVersions: (id) => request("DELETE", `/workloads/notebooks/${enc(id)}/file/versions`),
  // Its Sail's and Marimo's output as last read, and an ask to read it now.
  notebookLogs: (id) => request("GET", `/workloads/notebooks/${enc(id)}/logs`),
  readNotebookLogs: (id) => request("POST", `/workloads/notebooks/${enc(id)}/logs`),
  // Recently deleted (docs/api.md): listed, downloaded, brought back, forgotten.
  deletedNotebooks: () => all("/workloads/deleted-notebooks"),
  deletedNotebookFile: (id) =>
    request("GET", `/workloads/deleted-notebooks/${enc(id)}/file`, undefined, { raw: true }),
  bringBack: (id, body) => request("POST", `/workloads/deleted-notebooks/${enc(id)}/restore`, body),
  forgetDeleted: (id) => request("DELETE", `/workloads/deleted-notebooks/${enc(id)}`),
  restoreFileVersion: (id, version) =>
    request("POST", `/workloads/notebooks/${enc(id)}/file/restore`, { version }),
  notebookTeams: (id) => all(`/workloads/notebooks/${enc(id)}/teams`),
  // The caller's organization and the running limits that apply; its own
  // limits set by org admins.
  organization: () => request("GET", "/organization"),
  setOrganizationLimits: (body) => request("PATCH", "/organization", body),
  // The organization's usage (org admins), or the caller's own notebooks',
  // in [from, to); `to` omitted: now.
  usage: (window) => request("GET", withWindow("/usage", window)),
  myUsage: (window) => request("GET", withWindow("/me/usage", window)),
  // Every notebook's line of either, as CSV (`{ blob, headers }`).
  usageExport: (window) => request("GET", withWindow("/usage/export", window), undefined, { raw: true }),
  myUsageExport: (window) => request("GET", withWindow("/me/usage/export", window), undefined, { raw: true }),
  // The organization's webhooks (org admins): listed, added (its secret
  // answered once), deleted, and their newest deliveries.
  webhooks: () => request("GET", "/webhooks"),
  createWebhook: (body) => request("POST", "/webhooks", body),
  deleteWebhook: (id) => request("DELETE", `/webhooks/${enc(id)}`),
  updateWebhook: (id, body) => request("PATCH", `/webhooks/${enc(id)}`, body),
  webhookDeliveries: (id) => request("GET", `/webhooks/${enc(id)}/deliveries`),
  testWebhook: (id) => request("POST", `/webhooks/${enc(id)}/test`),
  rotateWebhookSecret: (id) => request("POST", `/webhooks/${enc(id)}/secret`),
  // The organization's activity (org admins), newest first; `actor`: one
  // member's id, or "reconciler"; `notebook`: one notebook's, deleted or not.
  activity: ({ limit, marker, actor, notebook } = {}) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (marker) query.set("marker", marker);
    if (actor) query.set("actor", actor);
    if (notebook) query.set("notebook", notebook); // a deleted one's whole history
    return request("GET", `/events?${query}`);
  },
  audit: ({ limit, marker, actor } = {}) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (marker) query.set("marker", marker);
    if (actor) query.set("actor", actor);
    return request("GET", `/audit?${query}`);
  },
  stopAllNotebooks: (body) => request("POST", "/organization/stop-notebooks", body),
  codeSearch: (q) => request("GET", `/workloads/code-search?q=${enc(q)}`),
  notebookEvents: (id, limit, marker) =>
    request("GET", `/workloads/notebooks/${enc(id)}/events?limit=${limit}${marker ? `&marker=${enc(marker)}` : ""}`),
  addNotebookTeams: (id, teamIds) =>
    request("POST", `/workloads/notebooks/${enc(id)}/teams`, { teamIds }),
  removeNotebookTeam: (id, teamId) =>
    request("DELETE", `/workloads/notebooks/${enc(id)}/teams/${enc(teamId)}`),
  // By name, however capitalised (the API pages them newest first): a pick
  // among sixty teams is made by reading, not by remembering when each came.
  listTeams: async () => {
    const page = await all("/teams");
    page.items.sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
    return page;
  },
  listConfigs: () => all("/workloads/configs"),
  createConfig: (body) => request("POST", "/workloads/configs", body),
  updateConfig: (id, body) => request("PATCH", `/workloads/configs/${enc(id)}`, body),
  deleteConfig: (id) => request("DELETE", `/workloads/configs/${enc(id)}`),
  // People (people.js): a member's tokens, the organization's members (org
  // admins only) and who is in which team. A 401 here signs out as anywhere.
  listTokens: (memberId) => all(`/members/${enc(memberId)}/tokens`),
  revokeMemberToken: (memberId, tokenId) =>
    request("DELETE", `/members/${enc(memberId)}/tokens/${enc(tokenId)}`),
  // One page of members (newest first); `marker` is the one the page before gave.
  listMembers: ({ limit, marker, q, disabled } = {}) => {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set("limit", String(limit));
    if (marker) query.set("marker", marker);
    if (q) query.set("q", q);
    if (disabled) query.set("disabled", "true");
    const qs = query.toString();
    return request("GET", qs ? `/members?${qs}` : "/members");
  },
  createMember: (body) => request("POST", "/members", body),
  disableMember: (memberId) => request("DELETE", `/members/${enc(memberId)}`),
  enableMember: (memberId) => request("POST", `/members/${enc(memberId)}/enable`, {}),
  // Offers (offers.js): its owner offers a notebook, a colleague accepts or declines.
  offerNotebook: (id, email) => request("PUT", `/workloads/notebooks/${enc(id)}/offer`, { email }),
  notebookOffer: (id) => request("GET", `/workloads/notebooks/${enc(id)}/offer`),
  dropOffer: (id) => request("DELETE", `/workloads/notebooks/${enc(id)}/offer`),
  acceptOffer: (id) => request("POST", `/workloads/notebooks/${enc(id)}/offer/accept`, {}),
  offersToMe: (limit = 20) => request("GET", `/me/offers?limit=${limit}`),
  handOnAll: (memberId, to) => request("POST", `/members/${enc(memberId)}/handover`, { memberId: to }),
  updateMember: (memberId, body) => request("PATCH", `/members/${enc(memberId)}`, body),
  createTeam: (body) => request("POST", "/teams", body),
  renameTeam: (teamId, name) => request("PATCH", `/teams/${enc(teamId)}`, { name }),
  deleteTeam: (teamId) => request("DELETE", `/teams/${enc(teamId)}`),
  // How many notebooks are shared with a team (`total` of an empty page).
  // How many notebooks a member owns (`total` of an empty page; org admins see all).
  ownedNotebookCount: async (memberId) =>
    (await request("GET", `/workloads/notebooks?owner=${enc(memberId)}&limit=0`)).total,
  teamNotebookCount: async (teamId) =>
    (await request("GET", `/workloads/teams/${enc(teamId)}/notebooks?limit=0`)).total,
  teamMembers: (teamId) => all(`/teams/${enc(teamId)}/members`),
  setTeamRole: (teamId, memberId, role) =>
    request("PUT", `/teams/${enc(teamId)}/members/${enc(memberId)}`, { role }),
  removeTeamMember: (teamId, memberId) =>
    request("DELETE", `/teams/${enc(teamId)}/members/${enc(memberId)}`),
};
