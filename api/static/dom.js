// Small DOM and formatting helpers. Text always goes in through textContent,
// never innerHTML, so names and messages from the API cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Show an error (or clear it with null) in an element that has role="alert".
export function showError(el, error, context) {
  if (!error) {
    el.textContent = "";
    el.hidden = true;
    return;
  }
  el.textContent = errorText(error, context);
  el.hidden = false;
}

// What an error says, after what failed: a problem's detail, else its message.
function errorText(error, context) {
  const detail = error.detail || error.message || String(error);
  return context ? `${context}: ${detail}` : detail;
}

const politeRegion = () => document.getElementById("announcer");
export function announce(message) {
  const region = politeRegion();
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes screen readers announce repeats too.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: status });
}

// Like showError, but an element that already says the same is left alone:
// a poll that fails again the same way is not announced again.
export function keepError(el, error, context) {
  if (el.hidden || el.textContent !== errorText(error, context)) showError(el, error, context);
}

// Text set only when it differs: rewriting a live region with the same words
// makes screen readers say them again.
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

const EXACT = {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
};

// A moment in full, with its time zone ("Nov 27, 2026, 05:01 AM UTC").
export const exactTime = (iso) => new Date(iso).toLocaleString(undefined, EXACT);

// The relative time shows; the exact one, with its time zone, is in the
// text too (visually hidden) so keyboard, touch and screen reader users get
// it, not only a mouse's tooltip.
export function formatTime(iso) {
  if (!iso) return h("span", { class: "muted", text: "never" });
  const date = new Date(iso);
  const exact = exactTime(iso);
  return h(
    "time",
    { datetime: iso, title: exact },
    h("span", { class: "relative", text: relative(date) }),
    h("span", { class: "visually-hidden", text: ` (${exact})` }),
  );
}

// Bring the relative times under `root` up to date (pages that do not poll).
export function refreshTimes(root) {
  for (const span of root.querySelectorAll("time[datetime] > .relative")) {
    setText(span, relative(new Date(span.parentElement.getAttribute("datetime"))));
  }
}

export function relative(date, now = Date.now()) {
  const seconds = Math.round((now - date.getTime()) / 1000);
  const abs = Math.abs(seconds);
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (abs < 45) return fmt.format(-seconds, "second");
  if (abs < 2700) return fmt.format(-Math.round(seconds / 60), "minute");
  if (abs < 64800) return fmt.format(-Math.round(seconds / 3600), "hour");
  return fmt.format(-Math.round(seconds / 86400), "day");
}

export function formatTimeout(seconds) {
  if (seconds === 0) return "never";
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

// Put focus on a view's heading after navigation so keyboard and screen
// reader users land where the content changed.
export function focusHeading(view) {
  const heading = view.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

export function setBusy(button, busy) {
  button.disabled = busy;
  button.setAttribute("aria-busy", busy ? "true" : "false");
}

// Busy without `disabled`: a disabled button loses focus (to the page's
// body), so a button the member may still have focus on is only marked, and
// its handler ignores clicks while `isBusy`.
export function markBusy(button, busy) {
  button.setAttribute("aria-busy", busy ? "true" : "false");
  if (busy) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}

export const isBusy = (button) => button.getAttribute("aria-busy") === "true";

// The top bar's org admins' pages (the API refuses anyone else): shown on
// sign-in and each navigation as `GET /me` says, dropped at a refusal.
export function showAdminNav(shown) {
  document.getElementById("nav-activity").hidden = !shown; // Usage is everyone's (their own)
  document.getElementById("nav-webhooks").hidden = !shown;
  document.getElementById("nav-audit").hidden = !shown;
}

// A secret shown once (a token's, a webhook's signing secret): its warning,
// the value selected in a read-only field, Copy and Done. `onDone` runs
// when Done is pressed; `noun` names it in a failed copy's hint ("the token
// is selected"); the caller puts the box in the page and focuses
// its field (`secretBox(...).querySelector("input")`).
export function secretBox({ id, title, warning, label, noun, value, copyLabel, onDone, dataset = {} }) {
  const input = h("input", {
    id,
    class: "secret-value",
    readonly: true,
    value,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": `${id}-warning`,
  });
  const status = h("span", { class: "hint", role: "status" });
  const copy = async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = "Copied.";
    } catch {
      status.textContent = `Could not copy: the ${noun} is selected, press Ctrl+C (⌘C) to copy it.`;
    }
  };
  return h(
    "div",
    { class: "secret-box", dataset },
    h("h3", { text: title }),
    h("p", { id: `${id}-warning`, class: "secret-warning", text: warning }),
    h("label", { for: id, text: label }),
    h("div", { class: "secret-row" }, input, h("button", { type: "button", class: "secondary", text: copyLabel, onclick: copy })),
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", text: "Done", onclick: onDone })),
  );
}
