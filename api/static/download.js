// A notebook's file, downloaded from the copies the platform keeps of it
// (docs/api.md "A notebook's file"): a stopped notebook's code, without
// starting it, and its earlier versions (a cell deleted, then saved over),
// each of which can be restored for its next start.
// While it runs, the editor's own menu has what is on screen.

import { confirmThen } from "./actions.js";
import { api } from "./api.js";
import { $, announce, exactTime, formatTime, h, isBusy, markBusy, showError } from "./dom.js";
import { canAdminister, canManage } from "./store.js";

const said = new Map(); // notebook id -> what its last download said
const inFlight = new Set(); // "<notebook id>:<version or newest>"
let versionsOf = null; // the notebook whose versions are shown

// The file name the API gives (`filename*`, RFC 8187, else `filename`).
export function fileName(disposition) {
  const full = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (full) {
    try {
      return decodeURIComponent(full[1]);
    } catch {
      // a malformed escape: the plain name below
    }
  }
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : "notebook.py";
}

// The "File" fact of a notebook's page: Download, Versions, and what the
// last download said. Redrawn by each poll, so the state lives here.
export function fileFact(nb, errorEl) {
  const button = h("button", {
    type: "button",
    class: "secondary",
    dataset: { focusKey: `${nb.id}:Download` },
    text: "Download .py",
    onclick: (ev) => download(nb, null, ev.currentTarget, errorEl),
  });
  if (inFlight.has(`${nb.id}:newest`)) markBusy(button, true);
  const shown = versionsOf === nb.id;
  // Earlier versions may hold what the owner took out: not a team viewer's.
  const versions = canManage(nb) && h("button", {
    type: "button",
    class: "secondary",
    dataset: { focusKey: `${nb.id}:Versions` },
    "aria-expanded": shown ? "true" : "false",
    "aria-controls": "nb-versions",
    text: "Earlier versions",
    onclick: () => (versionsOf === nb.id ? hideVersions() : showVersions(nb)),
  });
  const note = said.get(nb.id) || "the copy kept while it runs (every few minutes) and as it stops";
  return [button, " ", versions, " ", h("span", { class: "muted", dataset: { fileNote: nb.id }, text: note })];
}

// Out of sight when the page shows another notebook, or none.
export function hideVersions() {
  versionsOf = null;
  $("#nb-versions").hidden = true;
  $("#nb-versions-list").replaceChildren();
  showError($("#versions-error"), null);
  for (const b of document.querySelectorAll("[data-focus-key$=':Versions']")) b.setAttribute("aria-expanded", "false");
}

async function showVersions(nb) {
  versionsOf = nb.id;
  for (const b of document.querySelectorAll("[data-focus-key$=':Versions']")) b.setAttribute("aria-expanded", "true");
  const section = $("#nb-versions");
  const list = $("#nb-versions-list");
  const errorEl = $("#versions-error");
  const forget = $("#versions-forget");
  forget.hidden = !canAdminister(nb);
  forget.onclick = (ev) => confirmForget(nb, ev.currentTarget);
  section.hidden = false;
  list.replaceChildren(h("li", { class: "muted", text: "Loading…" }));
  showError(errorEl, null);
  try {
    const { items } = await api.notebookFileVersions(nb.id);
    if (versionsOf !== nb.id) return; // hidden, or another notebook, meanwhile
    list.replaceChildren(
      ...(items.length
        ? items.map((v, i) => versionRow(nb, v, i === 0, errorEl))
        : [h("li", { class: "muted", text: "None yet: one is kept once it has run." })]),
    );
  } catch (err) {
    if (versionsOf !== nb.id) return;
    list.replaceChildren();
    showError(errorEl, err, "Could not list the versions");
  }
}

function confirmForget(nb, trigger) {
  confirmThen({
    trigger,
    title: "Forget the earlier versions?",
    text: `Every version of ${nb.name}'s file but the newest goes for good. Use this when an earlier version held a secret. The notebook and its newest file stay; its history records that they were forgotten.`,
    action: "Forget earlier versions",
    context: "Could not forget them",
    run: () => api.forgetFileVersions(nb.id),
    after: async () => {
      announce(`Earlier versions of ${nb.name}'s file forgotten`);
      if (versionsOf === nb.id) await showVersions(nb);
    },
  });
}

function versionRow(nb, v, newest, errorEl) {
  const kb = v.bytes < 1024 ? `${v.bytes} bytes` : `${(v.bytes / 1024).toFixed(1)} KiB`;
  const labels = [newest && "the newest", v.restoredFrom && `restored from the version of ${exactTime(v.restoredFrom)}`];
  const label = labels.filter(Boolean).join(" · ");
  // The newest is the file already: nothing to restore.
  const restore = !newest && h("button", {
    type: "button",
    class: "secondary",
    dataset: { focusKey: `${nb.id}:restore:${v.version}` },
    text: "Restore",
    "aria-label": `Restore the version of ${exactTime(v.keptAt)}`,
    onclick: (ev) => confirmRestore(nb, v, ev.currentTarget),
  });
  return h(
    "li",
    { dataset: { version: v.version } },
    formatTime(v.keptAt),
    ` · ${kb}${label ? ` · ${label}` : ""} `,
    h("button", {
      type: "button",
      class: "secondary",
      dataset: { focusKey: `${nb.id}:version:${v.version}` },
      text: "Download",
      "aria-label": `Download the version of ${exactTime(v.keptAt)}`,
      onclick: (ev) => download(nb, v, ev.currentTarget, errorEl),
    }),
    restore && " ",
    restore,
  );
}

// Written at the notebook's next start, over its file; refused (409, said
// in the dialog) unless the notebook is stopped or failed.
function confirmRestore(nb, v, trigger) {
  confirmThen({
    trigger,
    title: "Restore this version?",
    text: `${nb.name} opens with its file as it was at ${exactTime(v.keptAt)} when it next starts. Its newest file stays, as an earlier version. The notebook must be stopped.`,
    action: "Restore",
    context: "Could not restore it",
    run: () => api.restoreFileVersion(nb.id, v.version),
    after: async () => {
      announce(`The version of ${exactTime(v.keptAt)} is restored: ${nb.name} opens with it at its next start`);
      if (versionsOf === nb.id) await showVersions(nb);
    },
  });
}

// An earlier version's file is named for when it was kept, as the list
// shows it: `Name 2026-11-28 1005.py` (UTC).
function versionName(name, keptAt) {
  if (!keptAt) return name;
  const stamp = keptAt.slice(0, 16).replace("T", " ").replace(":", "");
  return name.replace(/(\.py)?$/, ` ${stamp}$1`);
}

// A file the API answered (`{ blob, headers }`), a notebook's unless `type`
// says otherwise, saved by the browser under the name the API gives
// (`rename` may change it); its name.
export function saveFile({ blob, headers }, rename = (name) => name, type = "text/x-python") {
  if (!(headers.get("Content-Type") || "").startsWith(type)) {
    // A page from something in front of the API (a proxy's, a portal's), not the file.
    throw new Error(type === "text/x-python" ? "the answer is not the notebook's file" : "the answer is not the file asked for");
  }
  const name = rename(fileName(headers.get("Content-Disposition")));
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the browser has it by then
  return name;
}

// `v`: an earlier version from the list; null: the newest.
async function download(nb, v, button, errorEl) {
  const version = v?.version;
  const key = `${nb.id}:${version || "newest"}`;
  if (isBusy(button) || inFlight.has(key)) return;
  inFlight.add(key);
  markBusy(button, true);
  showError(errorEl, null);
  try {
    const answer = await api.notebookFile(nb.id, version);
    const name = saveFile(answer, (named) => versionName(named, v?.keptAt));
    const { headers } = answer;
    const copied = new Date(headers.get("Last-Modified") || NaN);
    const when = Number.isNaN(copied.getTime()) ? "" : `: the copy of ${copied.toLocaleString()}`;
    const message = `Downloaded ${name}${when}.`;
    said.set(nb.id, message);
    announce(message);
  } catch (err) {
    showError(errorEl, err, "Could not download the file");
  } finally {
    inFlight.delete(key);
    // The button and the note, as a poll may have redrawn them meanwhile.
    const focusKey = version ? `${nb.id}:version:${version}` : `${nb.id}:Download`;
    for (const b of document.querySelectorAll(`[data-focus-key="${CSS.escape(focusKey)}"]`)) {
      markBusy(b, false);
    }
    for (const note of document.querySelectorAll(`[data-file-note="${CSS.escape(nb.id)}"]`)) {
      if (said.has(nb.id)) note.textContent = said.get(nb.id);
    }
  }
}
