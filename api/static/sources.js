// A new notebook started from a file the member brings (docs/api.md
// "Starting from a file"): the `source` the API converts to Marimo's file.

// The API takes a body of 1 MiB at most.
const MAX_BODY_BYTES = 1024 * 1024;
// A file is read whole before its outputs are dropped: one past this is
// refused unread (a Jupyter notebook heavy with plots is far below it).
const MAX_READ_BYTES = 64 * 1024 * 1024;
const FORMATS = new Map([["py", "py"], ["ipynb", "ipynb"], ["md", "md"], ["markdown", "md"], ["qmd", "md"]]);

// A Jupyter notebook's outputs and attachments (images, tables) were its old
// kernel's and are no part of the code (the converter reads neither):
// dropped here, so a notebook heavy with them still fits the body. Text that
// is not JSON goes as it is, for the API to name why.
function withoutOutputs(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    return text;
  }
  if (!doc || !Array.isArray(doc.cells)) return text;
  for (const cell of doc.cells) {
    if (!cell || typeof cell !== "object") continue;
    if ("outputs" in cell) cell.outputs = [];
    delete cell.attachments;
  }
  return JSON.stringify(doc);
}

// The name a file suggests for its notebook: its own, without the extension.
export function nameOf(file) {
  return file.name.replace(/\.[^.]*$/, "").trim().slice(0, 128);
}

// `{format, content}` for the API, or an error with a `detail` to show.
export async function sourceOf(file) {
  const extension = (file.name.match(/\.([^.]+)$/)?.[1] ?? "").toLowerCase();
  const format = FORMATS.get(extension);
  if (!format) {
    throw { detail: `${file.name} is not a notebook file: choose a .py, .ipynb or .md file.` };
  }
  if (file.size > MAX_READ_BYTES) throw tooLargeError(file);
  const text = await file.text();
  return { format, content: format === "ipynb" ? withoutOutputs(text) : text };
}

// Said before sending rather than answered 413: the body, as JSON escapes it.
export function tooLarge(body) {
  return new Blob([JSON.stringify(body)]).size > MAX_BODY_BYTES;
}

export function tooLargeError(file) {
  return { detail: `${file.name} is too large: a new notebook can bring 1 MiB (a Jupyter notebook's outputs are left out).` };
}
