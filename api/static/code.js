// Searching notebooks' code (#/code[?q=…]; docs/api.md "Searching notebooks'
// code"): the text in the kept copy of each notebook's file the member may
// see, a stopped notebook's too, with the first matching line. The query is
// in the address, so a search is linked and comes back with Back.

import { api } from "./api.js";
import { $, announce, exactTime, formatTime, h, showError } from "./dom.js";

const view = { visit: 0 };

function item(hit) {
  const more = hit.lines > 1 ? ` (and ${hit.lines - 1} more line${hit.lines > 2 ? "s" : ""})` : "";
  return h(
    "li",
    { dataset: { notebookId: hit.notebookId } },
    h("a", { href: `#/notebooks/${encodeURIComponent(hit.notebookId)}`, text: hit.name }),
    h("span", { class: "muted small", title: exactTime(hit.keptAt), text: ` · its copy of ${formatTime(hit.keptAt)}` }),
    h("div", {}, h("span", { class: "muted", text: `line ${hit.line}: ` }), h("code", { text: hit.text }), h("span", { class: "muted", text: more })),
  );
}

// What the answer says, in one sentence.
function sentence(found, q) {
  const n = found.items.length;
  const how = n === 0
    ? `No notebook's code holds “${q}”.`
    : found.more
      ? `The ${n} most recently kept of more notebooks that hold “${q}”.`
      : `${n} notebook${n > 1 ? "s hold" : " holds"} “${q}”.`;
  return found.partial
    ? `${how} Only the ${found.searched} most recently kept were searched (64 MiB of code): a longer text narrows it.`
    : how;
}

async function run(q) {
  const visit = ++view.visit; // a search asked again drops the one on its way
  const list = $("#code-results");
  const said = $("#code-said");
  const region = $("#view-code");
  showError($("#code-error"), null);
  list.replaceChildren();
  said.textContent = "";
  if (!q) {
    region.removeAttribute("aria-busy");
    return;
  }
  region.setAttribute("aria-busy", "true");
  try {
    const found = await api.codeSearch(q);
    if (visit !== view.visit) return;
    list.replaceChildren(...found.items.map(item));
    said.textContent = sentence(found, q);
    announce(said.textContent);
  } catch (err) {
    if (visit === view.visit) showError($("#code-error"), err, "Could not search");
  } finally {
    if (visit === view.visit) region.removeAttribute("aria-busy");
  }
}

function submit(ev) {
  ev.preventDefault();
  const q = $("#code-q").value;
  const next = `#/code?q=${encodeURIComponent(q)}`;
  if (location.hash === next) run(q); // the same search again: read anew
  else location.hash = next; // routed back here, with the query in the address
}

export const codeView = {
  el: () => $("#view-code"),
  enter({ q = "" }) {
    $("#code-form").onsubmit = submit;
    $("#code-q").value = q;
    run(q);
  },
  leave() {
    view.visit += 1; // an answer on its way is dropped
    $("#view-code").removeAttribute("aria-busy");
  },
};
