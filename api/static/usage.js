// Usage (#/usage): how long notebooks held servers in a month or the last
// days, and which held them longest. The organization's, for its org admins
// (GET /usage), with its running limits under it; every other member's own
// notebooks' (GET /me/usage). docs/console.md "Usage". Read on each visit and
// each change of window; it does not poll (a report).

import { api } from "./api.js";
import { saveFile } from "./download.js";
import { $, h, isBusy, markBusy, showAdminNav, showError } from "./dom.js";
import { loadLimits } from "./limits.js";
import { absorb, memberLabel, state } from "./store.js";

// `visit`: the report asked for last (a new window drops an older answer);
// `stay`: this visit to the page (the limits are read once per visit);
// `shown`: the window of the report on the page, as it answered it.
const view = { visit: 0, stay: 0, org: false, shown: null };

// The window as the API takes it: [from, to), to omitted = now, from
// omitted = the start of this month (UTC, by the server's clock: a browser
// whose clock runs ahead would ask for a month still to come).
function windowOf(choice, now = new Date()) {
  const monthStart = (y, m) => new Date(Date.UTC(y, m, 1));
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  switch (choice) {
    case "last-month":
      return { from: monthStart(y, m - 1), to: monthStart(y, m) };
    case "last-7-days":
      return { from: new Date(now.getTime() - 7 * 86400_000) };
    case "last-30-days":
      return { from: new Date(now.getTime() - 30 * 86400_000) };
    default: // this month, UTC: the API's default, by the API's clock
      return {};
  }
}

// Hours with one decimal (what a bill says); under six minutes, minutes.
function formatUsage(seconds) {
  if (seconds < 360) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toLocaleString(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 })} h`;
}

const DAY = { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" };
const day = (iso) => new Date(iso).toLocaleDateString(undefined, DAY);

function ownerCell(memberId) {
  // Deleted for good before tombstones kept whose they were (docs/api.md, Usage).
  if (!memberId) return h("td", { "data-label": "Owner", text: "Not recorded (deleted notebooks)" });
  // What they did, beside what they used (the activity is the admins').
  if (!view.org) return h("td", { "data-label": "Owner", text: memberLabel(memberId) });
  return h("td", { "data-label": "Owner" }, h("a", { href: `#/activity/${encodeURIComponent(memberId)}`, text: memberLabel(memberId) }));
}

function render(report) {
  const count = report.notebooks === 1 ? "1 notebook" : `${report.notebooks} notebooks`;
  // `to` is exclusive: last month ends on its last day, not the 1st after it.
  const last = new Date(Date.parse(report.to) - 1).toISOString();
  $("#usage-summary").textContent = `${formatUsage(report.seconds)} across ${count}, ${day(report.from)} to ${day(last)} (UTC).`;
  $("#usage-members").replaceChildren(
    ...(report.byMember.length
      ? report.byMember.map((m) =>
          h("tr", {}, ownerCell(m.memberId), h("td", { "data-label": "Notebooks", text: String(m.notebooks) }), h("td", { "data-label": "Time", class: "num", text: formatUsage(m.seconds) })),
        )
      : [h("tr", {}, h("td", { colspan: "3", class: "muted", text: "No notebook ran in this window." }))]),
  );
  $("#usage-notebooks").replaceChildren(
    ...report.byNotebook.map((n) => {
      const name = n.name || n.notebookId;
      const cell = n.deleted
        ? h("td", { "data-label": "Notebook", text: `${name} (deleted)` })
        : h("td", { "data-label": "Notebook" }, h("a", { href: `#/notebooks/${encodeURIComponent(n.notebookId)}`, text: name }));
      return h("tr", {}, cell, h("td", { "data-label": "Owner", text: n.memberId ? memberLabel(n.memberId) : "—" }), h("td", { "data-label": "Time", class: "num", text: formatUsage(n.seconds) }));
    }),
  );
  $("#usage-notebooks-panel").hidden = report.byNotebook.length === 0;
}

// A spreadsheet's cell: quoted when it holds a comma, a quote or a line
// break; a leading = + - @ (a formula, in a spreadsheet; full-width forms
// and white space or control codes before it included) defused with a ',
// as the API's export does (api/usage.py `spreadsheet_cell`).
const FORMULA = /^[\s\p{C}]*[=+\-@\uff1d\ufe66\uff0b\ufe62\uff0d\ufe63\uff20]|^[\t\r]/u;
function cell(value) {
  let text = String(value ?? "");
  if (FORMULA.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// The owners' table as CSV, for the bill: one line per owner.
function usageCsv(report) {
  const lines = [["owner_id", "owner_name", "owner_email", "notebooks", "seconds", "hours"]];
  for (const m of report.byMember) {
    const member = m.memberId ? state.members.get(m.memberId) : null;
    const hours = (m.seconds / 3600).toFixed(2);
    lines.push([m.memberId || "", member?.name || "", member?.email || "", m.notebooks, m.seconds, hours]);
  }
  return lines.map((line) => line.map(cell).join(",")).join("\r\n") + "\r\n";
}

let csvUrl = null;

// "Download CSV": the report shown, as a file named for its window.
function offerCsv(report) {
  if (csvUrl) URL.revokeObjectURL(csvUrl);
  csvUrl = URL.createObjectURL(new Blob([usageCsv(report)], { type: "text/csv" }));
  const link = $("#usage-csv");
  link.href = csvUrl;
  const last = new Date(Date.parse(report.to) - 1).toISOString().slice(0, 10);
  link.download = `usage-${report.from.slice(0, 10)}-to-${last}.csv`;
}

// "Every notebook as CSV": the report on the page, every notebook's line
// (the page lists the 100 that ran longest), from the API (GET /usage/export).
// Saved even if another window was chosen meanwhile (its name says its
// window); said, or its error shown, only while the page shows that report.
async function exportCsv(button) {
  const span = view.shown;
  if (!span || isBusy(button)) return;
  const visit = view.visit;
  const note = $("#usage-export-note");
  markBusy(button, true);
  note.textContent = "";
  try {
    const answer = await (view.org ? api.usageExport(span) : api.myUsageExport(span));
    const name = saveFile(answer, undefined, "text/csv");
    if (visit === view.visit) note.textContent = `Downloaded ${name}.`;
  } catch (err) {
    if (visit !== view.visit) return;
    if (err.status === 403 && view.org) demoted();
    else showError($("#usage-error"), err, "Could not export the usage");
  } finally {
    markBusy(button, false);
  }
}

// Whose usage the page shows: the organization's (org admins) or the
// member's own notebooks' (GET /me/usage, everyone else).
function setScope(org) {
  view.org = org;
  $("#usage-title").textContent = org ? "Usage" : "Your usage";
  $("#usage-hint").textContent = org
    ? "How long each member's notebooks held servers (starting, running, idle, detached or stopping), from their history: a notebook counts for its owner now."
    : "How long the notebooks you own held servers (starting, running, idle, detached or stopping), from their history: a notebook handed to you counts for you.";
}

// `note`: said above the report once it is shown (and only then).
async function load(note = null) {
  const visit = ++view.visit;
  view.shown = null; // no export of the report on the page while another is read
  $("#usage-export-note").textContent = "";
  const { from, to } = windowOf($("#usage-window").value);
  const span = { from: from?.toISOString(), to: to?.toISOString() };
  const region = $("#usage-report");
  region.setAttribute("aria-busy", "true");
  try {
    const report = await (view.org ? api.usage(span) : api.myUsage(span));
    if (visit !== view.visit) return; // left, or another window chosen
    absorb(report.included);
    showError($("#usage-error"), note && { detail: note });
    render(report);
    offerCsv(report);
    view.shown = { from: report.from, to: report.to };
    region.hidden = false;
  } catch (err) {
    if (visit !== view.visit) return;
    region.hidden = true;
    if (err.status === 403 && view.org) demoted();
    else showError($("#usage-error"), err, "Could not load the usage");
  } finally {
    if (visit === view.visit) region.removeAttribute("aria-busy");
  }
}

// No longer an org admin: said, the admins' links and the limits go, and
// the page goes on with the member's own usage.
function demoted() {
  $("#limits-panel").hidden = true;
  view.stay += 1; // the limits' answer on its way is dropped too
  showAdminNav(false);
  setScope(false);
  load("Only organization admins see the organization's usage; this is yours.");
}

export const usageView = {
  el: () => $("#view-usage"),
  enter() {
    showError($("#usage-error"), null);
    $("#usage-report").hidden = true;
    $("#limits-panel").hidden = true;
    setScope(Boolean(state.me?.organizationAdmin));
    $("#usage-window").onchange = () => load();
    $("#usage-export").onclick = (ev) => exportCsv(ev.currentTarget);
    load();
    const stay = ++view.stay;
    if (view.org) loadLimits(() => stay === view.stay);
  },
  leave() {
    view.visit += 1; // an answer on its way is dropped
    view.stay += 1;
  },
};
