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
  const detail = error.detail || error.message || String(error);
  el.textContent = context ? `${context}: ${detail}` : detail;
  el.hidden = false;
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

export function formatTime(iso) {
  if (!iso) return h("span", { class: "muted", text: "never" });
  const date = new Date(iso);
  return h("time", { datetime: iso, title: date.toLocaleString() }, relative(date));
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
