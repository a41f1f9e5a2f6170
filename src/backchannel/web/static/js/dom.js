// Small DOM and formatting helpers shared by the UI modules.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export const $ = (id) => document.getElementById(id);

/** A button named by ``label`` (also its tooltip) showing an icon and, optionally, visible text. */
export function iconButton(className, label, iconNode, text) {
  const b = el("button", className);
  b.type = "button";
  if (iconNode) b.append(iconNode);
  if (text) b.append(el("span", null, text));
  b.setAttribute("aria-label", label);
  b.title = label;
  return b;
}

/** Settings this browser remembers (`bc.*` in localStorage); private mode keeps them for the page only. */
export const store = {
  get: (key, fallback) => {
    try {
      const raw = localStorage.getItem(`bc.${key}`);
      return raw == null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set: (key, value) => {
    try {
      localStorage.setItem(`bc.${key}`, JSON.stringify(value));
    } catch {
      /* private mode: settings last for this page only */
    }
  },
};

const HEX = /^#[0-9a-f]{6}$/i;
const HUMAN_COLORS = ["#64748b", "#0f766e", "#9333ea", "#b45309", "#be123c", "#1d4ed8"];

/** A colour we are willing to put in a style: the agent's own, or one derived from a name. */
export function colorFor(name, agent) {
  if (agent && HEX.test(agent.color || "")) return agent.color;
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return HUMAN_COLORS[h % HUMAN_COLORS.length];
}

/** An avatar: the agent's sanitised SVG hat as an image (never inline), or a coloured initial. */
export function avatar(name, agent, small = false) {
  const box = el("span", small ? "avatar small" : "avatar");
  box.setAttribute("aria-hidden", "true");
  box.style.setProperty("--c", colorFor(name, agent));
  const initial = (agent?.label || name || "?").trim().charAt(0).toUpperCase() || "?";
  box.append(el("span", "initial", initial));
  if (agent?.hat && agent.hat.startsWith("<svg")) {
    const img = el("img", "hat");
    img.alt = "";
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(agent.hat)}`;
    box.append(img);
  }
  return box;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric", year: "numeric" });

export const fmtTime = (ts) => timeFmt.format(new Date(ts * 1000));
export const fmtFull = (ts) => fullFmt.format(new Date(ts * 1000));

export function dayKey(ts) {
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function fmtDay(ts) {
  const d = new Date(ts * 1000);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(today.getTime() / 1000)) return "Today";
  if (dayKey(ts) === dayKey(yesterday.getTime() / 1000)) return "Yesterday";
  return dayFmt.format(d);
}

export function fmtAgo(ts) {
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function snippet(text, n = 90) {
  // A one-line preview: drop the Markdown markers that would otherwise show as raw symbols.
  const flat = String(text || "")
    .replace(/```[^\n]*\n?/g, " ")
    .replace(/(\*\*|__|~~|`)/g, "")
    .replace(/\s+/g, " ")
    .trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

let toastTimer = null;
export function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 5000);
}

/**
 * A modal form in the page's one <dialog>. `fields` are {name, label, value}; with none it is a
 * confirmation. A field may bring its own `input` (a textarea, a select) or be a bare `node` shown
 * as it is. `submit(values)` may throw to show an error and keep the dialog open.
 */
export function openDialog({ title, text, fields = [], ok = "OK", danger = false, submit }) {
  const dialog = $("dialog");
  const body = $("dialog-body");
  const error = $("dialog-error");
  $("dialog-title").textContent = title;
  body.replaceChildren();
  error.textContent = "";
  if (text) body.append(el("p", null, text));
  const inputs = {};
  for (const f of fields) {
    if (f.node) {
      body.append(f.node);
      continue;
    }
    const label = el("label", "field");
    label.append(el("span", null, f.label));
    const input = f.input || el("input");
    if (!f.input) {
      input.name = f.name;
      input.value = f.value ?? "";
      input.required = f.required ?? true;
      if (f.maxLength) input.maxLength = f.maxLength;
      if (f.placeholder) input.placeholder = f.placeholder;
    }
    label.append(input);
    body.append(label);
    inputs[f.name] = input;
  }
  const okBtn = $("dialog-ok");
  okBtn.textContent = ok;
  okBtn.classList.toggle("danger", danger);
  const form = $("dialog-form");
  const cancel = $("dialog-cancel");
  return new Promise((resolve) => {
    const done = (result) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(result);
    };
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const values = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.value.trim()]));
      okBtn.disabled = true;
      try {
        const result = submit ? await submit(values) : values;
        done(result ?? values);
      } catch (err) {
        error.textContent = err.message || String(err);
      } finally {
        okBtn.disabled = false;
      }
    };
    cancel.onclick = () => done(null);
    dialog.onclose = () => done(null);
    dialog.showModal();
    const first = Object.values(inputs)[0];
    if (first) {
      first.focus();
      if (first.select) first.select();
    } else {
      (danger ? cancel : okBtn).focus();
    }
  });
}
