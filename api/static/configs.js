// Workload configs: list them; organization admins create, edit and delete
// them. One form does both: "New" by default, "Edit" once a row's Edit is
// pressed, back to "New" after Save or Cancel.

import { confirmThen } from "./actions.js";
import { api } from "./api.js";
import { $, announce, h, setBusy, showError } from "./dom.js";
import { state, teamName } from "./store.js";

// The config the form edits (null: the form makes a new one), and its
// environment as the form showed it: sent again only if changed, so values
// a line of text cannot show as they are (several lines, edge spaces) are
// kept unless the admin rewrites them.
let editing = null;
let envShown = "";

function resources(spec = {}) {
  const parts = [];
  if (spec.cpu) parts.push(`${spec.cpu} CPU`);
  if (spec.memory) parts.push(`${spec.memory} memory`);
  if (spec.image) parts.push(spec.image);
  return parts.length ? parts.join(", ") : "defaults";
}

function rowActions(c) {
  const button = (action, text, cls, onclick) =>
    h("button", {
      type: "button",
      class: cls,
      "aria-label": `${text} ${c.name}`,
      dataset: { action, focusKey: `${action}:${c.id}` },
      text,
      onclick,
    });
  return h(
    "td",
    { class: "row-actions" },
    button("edit", "Edit", "secondary", () => startEdit(c)),
    button("delete", "Delete", "danger-outline", (ev) => confirmDelete(c, ev.currentTarget)),
  );
}

function row(c, admin) {
  // A secret variable by its name only: the API never answers its value.
  const env = [...Object.keys(c.env || {}).sort(), ...(c.secretEnvNames || []).map((name) => `${name} (secret)`)];
  return h(
    "tr",
    { dataset: { configId: c.id } },
    h(
      "td",
      { "data-label": "Name" },
      h("strong", { text: c.name }),
      c.description ? h("div", { class: "muted small", text: c.description }) : null,
    ),
    h("td", { "data-label": "Mode", text: c.mode === "cluster" ? `cluster, ${c.workers} workers` : c.mode || "standalone" }),
    h("td", { "data-label": "Sail", text: resources(c.sail) }),
    h("td", { "data-label": "Marimo", text: resources(c.marimo) }),
    h("td", { "data-label": "Environment", text: env.length ? env.join(", ") : "—" }),
    h("td", { "data-label": "Who may use it", text: whoMayUse(c) }),
    admin ? rowActions(c) : null,
  );
}

// docs/api.md "Who may use a config": null is everyone.
function whoMayUse(c) {
  if (c.teamIds == null) return "everyone";
  if (!c.teamIds.length) return "org admins";
  return c.teamIds.map(teamName).join(", ");
}

async function refresh() {
  const errorEl = $("#configs-error");
  const admin = !!state.me?.organizationAdmin;
  try {
    // The teams name who may use each; without them, their ids do.
    const [{ items }] = await Promise.all([api.listConfigs(), loadTeams().catch(() => null)]);
    items.forEach((c) => state.configs.set(c.id, c));
    $("#configs-body").replaceChildren(
      ...(items.length
        ? items.map((c) => row(c, admin))
        : [h("tr", {}, h("td", { colspan: admin ? "7" : "6", class: "muted", text: "No workload configs yet." }))]),
    );
    showError(errorEl, null);
    return items;
  } catch (err) {
    showError(errorEl, err, "Could not load workload configs");
    return null;
  }
}

// `NAME=value` lines to an object; a line without "=" is the member's
// mistake, reported before anything is sent. The value is kept as written,
// spaces at either end included (trimmed, a value with a trailing space
// lost it whenever another line was edited).
export function parseEnv(text, label = "Environment") {
  const env = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/\r$/, "");
    if (!line.trim()) continue;
    const eq = line.indexOf("=");
    const name = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!name) throw new Error(`${label} line ${i + 1} is not NAME=value`);
    env[name] = line.slice(eq + 1);
  }
  return env;
}

// The body to send. A new config leaves out what is empty (the API's
// defaults); an edit sends every part, so a field emptied is cleared.
function bodyFrom(form, edit) {
  const body = { name: form.name.value.trim(), mode: form.mode.value };
  const description = form.description.value.trim();
  if (description || edit) body.description = description;
  if (form.workers.value !== "") body.workers = Number(form.workers.value);
  for (const part of ["sail", "marimo"]) {
    const spec = {};
    for (const key of ["image", "cpu", "memory"]) {
      const value = form.elements[`${part}.${key}`].value.trim();
      if (value) spec[key] = value;
    }
    if (Object.keys(spec).length || edit) body[part] = spec;
  }
  const secretEnv = secretEnvFrom(form);
  if (Object.keys(secretEnv).length) body.secretEnv = secretEnv;
  const teamIds = teamIdsFrom(form, edit ? editing.teamIds : null);
  if (teamIds !== undefined) body.teamIds = teamIds;
  if (edit && form.env.value === envShown) return body;
  const env = parseEnv(form.env.value);
  if (Object.keys(env).length || edit) body.env = env;
  return body;
}

// The secret environment's change (docs/api.md "Secret environment"): each
// line sets or replaces one variable, each name ticked for removal goes
// (null); the rest stay as they are, unseen (their values are never read back).
function secretEnvFrom(form) {
  const change = parseEnv(form.secretEnv.value, "Secret environment");
  for (const box of form.querySelectorAll("input[name=secretRemove]:checked")) {
    if (box.value in change) {
      throw new Error(`${box.value} is both set and ticked for removal: untick it, or leave its line out.`);
    }
    change[box.value] = null;
  }
  return change;
}

// Who may use it, to send: undefined when the form leaves it as it was
// (`before`: the config's teamIds), so a Save of anything else never changes
// it, nor narrows it to org admins when the teams could not be listed.
function teamIdsFrom(form, before) {
  if (!form.restricted.checked) return before == null ? undefined : null;
  const ticked = [...form.querySelectorAll("input[name=configTeam]:checked")].map((box) => box.value);
  if (before == null) return ticked; // newly kept: for the teams ticked, or org admins only
  if (!teamsListed) return undefined; // its teams are not shown: kept as they are
  const same = ticked.length === before.length && ticked.every((id) => before.includes(id));
  return same ? undefined : ticked;
}

// Whether the form lists the teams (a read of them can fail).
let teamsListed = false;

// The organization's teams to keep a config for, those it is kept for ticked.
async function showTeams(config) {
  const form = $("#config-form");
  form.restricted.checked = config?.teamIds != null;
  const chosen = new Set(config?.teamIds || []);
  teamsListed = false;
  $("#cfg-team-choices").replaceChildren();
  try {
    const teams = await loadTeams();
    if (editing !== config) return; // another config's form by now
    teamsListed = true;
    $("#cfg-team-choices").replaceChildren(
      ...teams.map((t) =>
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            name: "configTeam",
            value: t.id,
            checked: chosen.has(t.id),
            // A team ticked keeps the config for it: without the first box
            // it would stay open to everyone, unsaid.
            onchange: (ev) => {
              if (ev.target.checked) form.restricted.checked = true;
            },
          }),
          ` ${t.name}`,
        ),
      ),
    );
  } catch (err) {
    showError($("#config-form-error"), err, "Could not load the teams");
  }
}

// The organization's teams, kept by id for the names in the list. The list
// and the form both ask as the page opens (and after a Save): one read
// serves the asks made while it is on its way.
let teamsRead = null;
function loadTeams() {
  teamsRead ??= api
    .listTeams()
    .then(({ items }) => {
      items.forEach((t) => state.teams.set(t.id, t));
      return items;
    })
    .finally(() => {
      teamsRead = null;
    });
  return teamsRead;
}

// The config's secret variables, by name, each with a box to remove it.
function showSecretNames(config) {
  const names = config?.secretEnvNames || [];
  $("#cfg-secret-names").replaceChildren(
    ...names.map((name) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "secretRemove", value: name }),
        ` Remove ${name}`,
      ),
    ),
  );
  $("#cfg-secret-current").hidden = names.length === 0;
}

// The form as it is for `config` (null: a new one).
function showForm(config) {
  editing = config;
  const form = $("#config-form");
  form.reset();
  showError($("#config-form-error"), null);
  $("#new-config-title").textContent = config ? `Edit workload config ${config.name}` : "New workload config";
  $("#config-submit").textContent = config ? "Save changes" : "Create workload config";
  $("#config-cancel").hidden = !config;
  $("#config-edit-note").hidden = !config;
  const envInput = $("#cfg-env");
  const multiline = Object.values(config?.env || {}).some((v) => /[\r\n]/.test(v));
  envInput.readOnly = multiline;
  $("#cfg-env-locked").hidden = !multiline;
  envShown = "";
  showSecretNames(config);
  showTeams(config);
  if (!config) return;
  form.name.value = config.name;
  form.mode.value = config.mode || "standalone";
  form.workers.value = config.workers ?? "";
  form.description.value = config.description || "";
  for (const part of ["sail", "marimo"]) {
    for (const key of ["image", "cpu", "memory"]) {
      form.elements[`${part}.${key}`].value = config[part]?.[key] || "";
    }
  }
  // By name (the API keeps no order: PostgreSQL's jsonb sorts by length).
  form.env.value = Object.entries(config.env || {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("\n");
  envShown = form.env.value;
}

function startEdit(config) {
  showForm(config);
  $("#config-panel").scrollIntoView({ block: "start" });
  $("#cfg-name").focus();
}

// Back to a new config's form; focus on the row's button it came from.
function endEdit(config) {
  showForm(null);
  const back = config && $(`#configs-body [data-focus-key="${CSS.escape(`edit:${config.id}`)}"]`);
  if (back) back.focus();
}

function confirmDelete(config, trigger) {
  confirmThen({
    trigger,
    title: `Delete workload config ${config.name}?`,
    text: `${config.name} will be gone for good. Notebooks that use it must be given another one, or deleted, first.`,
    action: "Delete workload config",
    context: "Could not delete it",
    run: () => api.deleteConfig(config.id),
    after: async () => {
      state.configs.delete(config.id);
      if (editing?.id === config.id) showForm(null);
      announce(`Workload config ${config.name} deleted`);
      await refresh();
      $("#configs-title").setAttribute("tabindex", "-1");
      $("#configs-title").focus();
    },
  });
}

export const configsView = {
  el: () => $("#view-configs"),
  enter() {
    const admin = !!state.me?.organizationAdmin;
    $("#config-admin-note").hidden = admin;
    $("#configs-actions-head").hidden = !admin;
    const form = $("#config-form");
    form.hidden = !admin;
    showForm(null);
    const errorEl = $("#config-form-error");
    $("#config-cancel").onclick = () => endEdit(editing);
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      showError(errorEl, null);
      const config = editing;
      let body;
      try {
        body = bodyFrom(form, !!config);
      } catch (err) {
        showError(errorEl, err);
        return;
      }
      const submit = $("#config-submit");
      setBusy(submit, true);
      try {
        if (config) {
          const saved = await api.updateConfig(config.id, body);
          announce(`Workload config ${saved.name} saved`);
        } else {
          const created = await api.createConfig(body);
          announce(`Workload config ${created.name || body.name} created`);
        }
      } catch (err) {
        showError(errorEl, err);
        return;
      } finally {
        setBusy(submit, false);
      }
      await refresh();
      if (config) endEdit(config);
      else form.reset();
    };
    refresh();
  },
  leave() {
    editing = null;
  },
};
