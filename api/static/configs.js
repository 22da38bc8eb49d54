// Workload configs: list them; organization admins can create new ones.

import { api } from "./api.js";
import { $, announce, h, setBusy, showError } from "./dom.js";
import { state } from "./store.js";

function resources(spec = {}) {
  const parts = [];
  if (spec.cpu) parts.push(`${spec.cpu} CPU`);
  if (spec.memory) parts.push(`${spec.memory} memory`);
  if (spec.image) parts.push(spec.image);
  return parts.length ? parts.join(", ") : "defaults";
}

function row(c) {
  const env = Object.keys(c.env || {});
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
  );
}

async function refresh() {
  const errorEl = $("#configs-error");
  try {
    const { items } = await api.listConfigs();
    items.forEach((c) => state.configs.set(c.id, c));
    $("#configs-body").replaceChildren(
      ...(items.length
        ? items.map(row)
        : [h("tr", {}, h("td", { colspan: "5", class: "muted", text: "No workload configs yet." }))]),
    );
    showError(errorEl, null);
  } catch (err) {
    showError(errorEl, err, "Could not load workload configs");
  }
}

// `NAME=value` lines to an object; a line without "=" is the member's
// mistake, reported before anything is sent.
export function parseEnv(text) {
  const env = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`Environment line ${i + 1} is not NAME=value`);
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return env;
}

function bodyFrom(form) {
  const body = { name: form.name.value.trim(), mode: form.mode.value };
  if (form.description.value.trim()) body.description = form.description.value.trim();
  if (form.workers.value !== "") body.workers = Number(form.workers.value);
  for (const part of ["sail", "marimo"]) {
    const spec = {};
    for (const key of ["image", "cpu", "memory"]) {
      const value = form.elements[`${part}.${key}`].value.trim();
      if (value) spec[key] = value;
    }
    if (Object.keys(spec).length) body[part] = spec;
  }
  const env = parseEnv(form.env.value);
  if (Object.keys(env).length) body.env = env;
  return body;
}

export const configsView = {
  el: () => $("#view-configs"),
  enter() {
    const admin = !!state.me?.organizationAdmin;
    $("#config-admin-note").hidden = admin;
    const form = $("#config-form");
    form.hidden = !admin;
    const errorEl = $("#config-form-error");
    showError(errorEl, null);
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      showError(errorEl, null);
      let body;
      try {
        body = bodyFrom(form);
      } catch (err) {
        showError(errorEl, err);
        return;
      }
      const submit = $("#config-submit");
      setBusy(submit, true);
      try {
        const created = await api.createConfig(body);
        announce(`Workload config ${created.name || body.name} created`);
        form.reset();
        await refresh();
      } catch (err) {
        showError(errorEl, err);
      } finally {
        setBusy(submit, false);
      }
    };
    refresh();
  },
  leave() {},
};
