// A notebook's file, downloaded from the copy the platform keeps of it
// (docs/api.md "A notebook's file"): a stopped notebook's code, without
// starting it. While it runs, the editor's own menu has what is on screen.

import { api } from "./api.js";
import { announce, h, isBusy, markBusy, showError } from "./dom.js";

const said = new Map(); // notebook id -> what its last download said
const inFlight = new Set();

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

// The "File" fact of a notebook's page: its Download button and what the
// last download said. Redrawn by each poll, so the state lives here.
export function fileFact(nb, errorEl) {
  const button = h("button", {
    type: "button",
    class: "secondary",
    dataset: { focusKey: `${nb.id}:Download` },
    text: "Download .py",
    onclick: (ev) => download(nb, ev.currentTarget, errorEl),
  });
  if (inFlight.has(nb.id)) markBusy(button, true);
  const note = said.get(nb.id) || "the copy kept while it runs (every few minutes) and as it stops";
  return [button, " ", h("span", { class: "muted", dataset: { fileNote: nb.id }, text: note })];
}

async function download(nb, button, errorEl) {
  if (isBusy(button) || inFlight.has(nb.id)) return;
  inFlight.add(nb.id);
  markBusy(button, true);
  showError(errorEl, null);
  try {
    const { blob, headers } = await api.notebookFile(nb.id);
    if (!(headers.get("Content-Type") || "").startsWith("text/x-python")) {
      // A page from something in front of the API (a proxy's, a portal's), not the file.
      throw new Error("the answer is not the notebook's file");
    }
    const name = fileName(headers.get("Content-Disposition"));
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000); // the browser has it by then
    const copied = new Date(headers.get("Last-Modified") || NaN);
    const when = Number.isNaN(copied.getTime()) ? "" : `: the copy of ${copied.toLocaleString()}`;
    const message = `Downloaded ${name}${when}.`;
    said.set(nb.id, message);
    announce(message);
  } catch (err) {
    showError(errorEl, err, "Could not download the file");
  } finally {
    inFlight.delete(nb.id);
    // The button and its note, as a poll may have redrawn them meanwhile.
    for (const b of document.querySelectorAll(`[data-focus-key="${CSS.escape(`${nb.id}:Download`)}"]`)) {
      markBusy(b, false);
    }
    for (const note of document.querySelectorAll(`[data-file-note="${CSS.escape(nb.id)}"]`)) {
      if (said.has(nb.id)) note.textContent = said.get(nb.id);
    }
  }
}
