// Schedules: a strip above the composer listing the open channel's schedules (next run, runs,
// pause / resume, edit, delete), and the clock popover on the composer that schedules the message
// being typed: its @mentions become the targets, the rest the prompt.
//
// The server is the truth: GET /api/schedules?channel= on open and on every (re)connect, then
// `schedule` events (created / updated / fired / deleted) on every page. Events that arrive while
// the list loads are applied again after it (`late`), so nothing newer is lost.
import { request } from "./api.js";
import { $, el, fmtFull, iconButton, openDialog, snippet, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";
import { loadWithLate } from "./ordered.js";

const enc = encodeURIComponent;
const schedulesApi = {
  list: (channel) => request("GET", `/api/schedules?channel=${enc(channel)}`),
  create: (body) => request("POST", "/api/schedules", { json: body }),
  update: (id, patch) => request("PATCH", `/api/schedules/${id}`, { json: patch }),
  remove: (id) => request("DELETE", `/api/schedules/${id}`),
};

const SHAPES = {
  clock: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 7v5l3 2"],
  pause: ["M9 6v12", "M15 6v12"],
  play: ["M8 5l11 7-11 7z"],
};
/** A @mention in a message, as the server reads them (not inside an e-mail address or a path). */
const MENTION = /(?<![\w@./-])@([A-Za-z0-9_-]+)/g;
const COLLAPSE_ABOVE = 2; // more than this many: one summary line that opens the list
const TICK_MS = 15_000; // "next in 9 min" moves on by itself

export function scheduleIcon(name, size = 16) {
  return pathIcon(SHAPES[name], size);
}

/** `@claude @codex check CI` -> {targets: ["claude", "codex"], prompt: "check CI"}. */
export function splitDraft(text) {
  const targets = [];
  for (const m of String(text).matchAll(MENTION)) {
    const name = m[1].toLowerCase();
    if (!targets.includes(name)) targets.push(name);
  }
  const prompt = String(text).replace(MENTION, " ").replace(/[ \t]+/g, " ").replace(/ *\n */g, "\n").trim();
  return { targets, prompt };
}

/** ISO 8601 with this browser's offset (what the server asks for: never a bare local time). */
export function isoLocal(date) {
  const pad = (n) => String(n).padStart(2, "0");
  const off = -date.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const abs = Math.abs(off);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

const laterFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/** "next in 10 min", "next in 5 h 20 min", "next Fri, Dec 4, 09:00"; null when it will not run. */
export function nextText(nextRun, now = Date.now()) {
  const at = nextRun ? Date.parse(nextRun) : NaN;
  if (Number.isNaN(at)) return null;
  const s = (at - now) / 1000;
  if (s <= 0) return "due now";
  if (s < 60) return "next in under a minute";
  if (s <= 3600) return `next in ${Math.ceil(s / 60)} min`;
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    return m && m < 60 ? `next in ${h} h ${m} min` : `next in ${m >= 60 ? h + 1 : h} h`;
  }
  return `next ${laterFmt.format(new Date(at))}`;
}

/** How the schedule repeats, in words: "once", "every 2 hours", "daily at 09:00", "cron 0 9 * * 1". */
export function repeatText(s) {
  if (!s.spec) return "once";
  if (/^(every|daily)\b/i.test(s.spec)) return s.spec;
  return `cron ${s.spec}`;
}

/** A one-shot that has fired (or was cancelled by the server) is over: the strip no longer lists it. */
function isOver(s) {
  return s.one_shot && !s.next_run;
}

export class Schedules {
  constructor(app) {
    this.app = app;
    this.channel = null; // the channel whose schedules are loaded
    this.items = new Map(); // id -> schedule
    this.generation = 0;
    this.late = null;
    this.expanded = false; // the collapsed strip was opened on this page
    this.fresh = null; // id of the schedule this page just made (it flashes once)
    this.buildStrip();
    this.buildPopover();
    setInterval(() => this.tick(), TICK_MS);
  }

  // -- the strip ----------------------------------------------------------------------------------
  buildStrip() {
    const strip = el("section", "sched-strip");
    strip.id = "schedule-strip";
    strip.hidden = true;
    this.toggleBtn = el("button", "sched-summary");
    this.toggleBtn.type = "button";
    this.toggleBtn.setAttribute("aria-expanded", "false");
    this.toggleBtn.setAttribute("aria-controls", "schedule-list");
    this.toggleBtn.addEventListener("click", () => {
      this.expanded = !this.expanded;
      this.render();
    });
    this.list = el("ul", "sched-list");
    this.list.id = "schedule-list";
    strip.append(this.toggleBtn, this.list);
    strip.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && this.expanded && this.items.size > COLLAPSE_ABOVE) {
        ev.preventDefault();
        this.expanded = false;
        this.toggleBtn.focus(); // first: a list that holds the focus stays open
        this.render();
      }
    });
    this.strip = strip;
    $("composer").before(strip);
  }

  sorted() {
    const key = (s) => (s.next_run ? Date.parse(s.next_run) : Infinity);
    return [...this.items.values()].filter((s) => !isOver(s)).sort((a, b) => (b.active ? 1 : 0) - (a.active ? 1 : 0) || key(a) - key(b) || a.id - b.id);
  }

  render() {
    const items = this.sorted();
    this.strip.hidden = items.length === 0;
    this.strip.setAttribute("aria-label", `Schedules in #${this.channel || ""}`);
    const collapsible = items.length > COLLAPSE_ABOVE;
    if (!collapsible) this.expanded = false;
    // A schedule added elsewhere must not fold the list away under the keyboard's focus.
    else if (this.list.contains(document.activeElement)) this.expanded = true;
    this.toggleBtn.hidden = !collapsible;
    this.toggleBtn.setAttribute("aria-expanded", String(this.expanded));
    this.list.hidden = collapsible && !this.expanded;
    this.strip.classList.toggle("expanded", this.expanded);
    this.renderSummary(items);
    // Keep the focus where it was across a re-render (a live event must not drop it).
    const focused = document.activeElement?.closest?.(".sched-item");
    const keep = focused && this.list.contains(focused) ? [focused.dataset.id, document.activeElement.dataset.role] : null;
    this.list.replaceChildren(...items.map((s) => this.item(s)));
    if (keep) {
      const li = this.list.querySelector(`.sched-item[data-id="${keep[0]}"]`);
      (li?.querySelector(`[data-role="${keep[1]}"]`) || li?.querySelector("button"))?.focus();
    }
  }

  renderSummary(items = this.sorted()) {
    const paused = items.filter((s) => !s.active).length;
    const next = items.filter((s) => s.active).map((s) => s.next_run).filter(Boolean).sort((a, b) => Date.parse(a) - Date.parse(b))[0];
    const parts = [`${items.length} schedules`];
    if (paused) parts.push(`${paused} paused`);
    const soon = nextText(next);
    if (soon) parts.push(soon);
    this.toggleBtn.replaceChildren(scheduleIcon("clock", 15), el("span", "sched-summary-text", parts.join(" · ")), icon("down", 14));
    this.toggleBtn.title = this.expanded ? "Hide the schedules" : "Show the schedules";
  }

  item(s) {
    const li = el("li", `sched-item${s.active ? "" : " paused"}`);
    li.dataset.id = String(s.id);
    if (this.fresh === s.id) {
      li.classList.add("fresh");
      this.fresh = null;
    }
    const what = snippet(s.prompt, 40);
    const body = el("div", "sched-body");
    const head = el("div", "sched-head");
    head.append(scheduleIcon("clock", 14), el("span", "sched-prompt", snippet(s.prompt, 120)));
    head.title = s.prompt;
    const meta = el("div", "sched-meta");
    meta.append(el("span", "sched-targets", s.targets.map((t) => `@${t}`).join(" ")));
    meta.append(el("span", "sched-repeat", repeatText(s)));
    const when = el("span", "sched-when");
    this.fillWhen(when, s);
    meta.append(when);
    if (s.run_count) meta.append(el("span", "sched-count", s.run_count === 1 ? "ran once" : `ran ${s.run_count}×`));
    body.append(head, meta);
    const actions = el("div", "sched-actions");
    const pause = iconButton(
      "icon-btn small",
      s.active ? `Pause schedule: ${what}` : `Resume schedule: ${what}`,
      scheduleIcon(s.active ? "pause" : "play", 15),
    );
    pause.dataset.role = "pause";
    pause.addEventListener("click", () => this.setActive(s, !s.active));
    const edit = iconButton("icon-btn small", `Edit schedule: ${what}`, icon("edit", 15));
    edit.dataset.role = "edit";
    edit.addEventListener("click", () => this.edit(s));
    const del = iconButton("icon-btn small danger", `Delete schedule: ${what}`, icon("trash", 15));
    del.dataset.role = "delete";
    del.addEventListener("click", () => this.remove(s));
    actions.append(pause, edit, del);
    li.append(body, actions);
    return li;
  }

  fillWhen(node, s) {
    node.textContent = s.active ? nextText(s.next_run) || "not due" : "paused";
    node.title = s.next_run ? `Next run: ${fmtFull(Date.parse(s.next_run) / 1000)}` : "";
  }

  /** The clock moved on: only the times change, so the focus and the rest stay as they are. */
  tick() {
    if (this.strip.hidden) return;
    for (const li of this.list.children) {
      const s = this.items.get(Number(li.dataset.id));
      const node = li.querySelector(".sched-when");
      if (s && node) this.fillWhen(node, s);
    }
    if (!this.toggleBtn.hidden) this.renderSummary();
  }

  // -- loading ----------------------------------------------------------------------------------
  /** The open channel changed: its schedules replace the last one's. */
  async setChannel(name) {
    const gen = ++this.generation;
    if (name !== this.channel) {
      this.channel = name;
      this.items.clear();
      this.expanded = false;
      this.closePopover({ focus: false });
      this.render();
    }
    const loaded = await loadWithLate(this, () => schedulesApi.list(name), "schedules");
    if (!loaded || gen !== this.generation) return;
    this.items = new Map(loaded.result.map((s) => [s.id, s]));
    for (const e of loaded.late) this.onEvent(e, false);
    this.render();
  }

  /** After a (re)connect: catch up on what changed (and fired) while the page was away. */
  refresh() {
    if (this.channel) this.setChannel(this.channel);
  }

  /** A rename carries the channel's schedules with it. */
  renameChannel(old, name) {
    if (this.channel !== old) return;
    this.channel = name;
    for (const [id, s] of this.items) this.items.set(id, { ...s, channel: name });
    this.render();
  }

  // -- live events ------------------------------------------------------------------------------
  onEvent(e, live = true) {
    if (live) this.late?.push(e);
    const s = e.schedule;
    if (!s || s.id == null) return;
    if (e.action === "deleted" || s.channel !== this.channel) {
      if (!this.items.delete(s.id)) return;
    } else {
      this.items.set(s.id, s);
    }
    this.render();
  }

  // -- changes ----------------------------------------------------------------------------------
  async setActive(s, active) {
    try {
      const updated = await schedulesApi.update(s.id, { active });
      this.onEvent({ action: "updated", schedule: updated }, false);
    } catch (err) {
      toast(`Could not ${active ? "resume" : "pause"} the schedule: ${err.message}`);
    }
  }

  async edit(s) {
    const fields = [
      { name: "prompt", label: "Message", value: s.prompt, maxLength: 1000 },
      { name: "targets", label: "For agents (@name, space separated)", value: s.targets.map((t) => `@${t}`).join(" ") },
    ];
    if (s.spec) fields.push({ name: "spec", label: "Repeat (every 2 hours, daily at 09:00, or a cron line)", value: s.spec });
    const li = this.list.querySelector(`.sched-item[data-id="${s.id}"]`);
    const updated = await openDialog({
      title: "Edit schedule",
      fields,
      ok: "Save",
      submit: async ({ prompt, targets, spec }) => {
        const names = targets.split(/[\s,]+/).map((t) => t.replace(/^@/, "").toLowerCase()).filter(Boolean);
        const patch = { prompt, targets: names };
        if (s.spec) patch.spec = spec;
        return schedulesApi.update(s.id, patch);
      },
    });
    if (updated?.id != null) this.onEvent({ action: "updated", schedule: updated }, false);
    (this.list.querySelector(`.sched-item[data-id="${s.id}"] [data-role="edit"]`) || li?.querySelector("button") || this.app.composer.input).focus();
  }

  async remove(s) {
    const ids = this.sorted().map((x) => x.id);
    const done = await openDialog({
      title: "Delete this schedule?",
      text: `“${snippet(s.prompt, 80)}” for ${s.targets.map((t) => `@${t}`).join(" ")} (${repeatText(s)}) will not be sent again.`,
      ok: "Delete schedule",
      danger: true,
      submit: async () => {
        try {
          await schedulesApi.remove(s.id);
        } catch (err) {
          if (err.status !== 404) throw err; // gone already: that is what was asked
        }
        return true;
      },
    });
    if (!done) return;
    this.onEvent({ action: "deleted", schedule: { id: s.id, channel: s.channel } }, false);
    // The focus goes to the next schedule (or the one before), else back to the message box.
    const at = ids.indexOf(s.id);
    const rest = ids.filter((id) => id !== s.id);
    const next = rest[Math.min(at, rest.length - 1)];
    const target = this.list.hidden ? this.toggleBtn : this.list.querySelector(`.sched-item[data-id="${next}"] [data-role="delete"]`);
    (target && !this.strip.hidden ? target : this.app.composer.input).focus();
  }

  // -- the clock popover ------------------------------------------------------------------------
  buildPopover() {
    this.clock = $("schedule-button");
    this.clock.prepend(scheduleIcon("clock", 18));
    const form = el("form", "sched-pop");
    form.id = "schedule-popover";
    form.hidden = true;
    form.tabIndex = -1; // a click on its background keeps the focus (and Escape) inside it
    form.noValidate = true; // the inline error says what is wrong, in the page's words
    form.setAttribute("role", "dialog");
    form.setAttribute("aria-labelledby", "sched-pop-title");
    const title = el("h2", null, "Schedule this message");
    title.id = "sched-pop-title";
    this.preview = el("p", "sched-preview");
    this.preview.id = "sched-preview";
    form.setAttribute("aria-describedby", "sched-preview");

    const group = el("fieldset", "sched-options");
    group.append(el("legend", "sr-only", "When"));
    const row = (value, label, ...parts) => {
      const wrap = el("label", "sched-opt");
      const radio = el("input");
      radio.type = "radio";
      radio.name = "when";
      radio.value = value;
      radio.setAttribute("aria-label", label);
      wrap.append(radio, ...parts.map((p) => (typeof p === "string" ? el("span", null, p) : p)));
      // Typing in a row's fields picks that row.
      wrap.addEventListener("focusin", (ev) => {
        if (ev.target !== radio) radio.checked = true;
      });
      group.append(wrap);
      return radio;
    };
    const input = (type, name, label, extra = {}) => {
      const i = el("input");
      i.type = type;
      i.name = name;
      i.setAttribute("aria-label", label);
      Object.assign(i, extra);
      return i;
    };
    this.inMinutes = input("number", "in_minutes", "Minutes from now", { min: 1, max: 100000, value: "10", className: "num" });
    this.atTime = input("datetime-local", "at", "Date and time");
    this.everyN = input("number", "every_n", "Repeat every how many", { min: 1, max: 1000, value: "1", className: "num" });
    this.everyUnit = el("select");
    this.everyUnit.name = "every_unit";
    this.everyUnit.setAttribute("aria-label", "Unit");
    for (const u of ["minutes", "hours", "days"]) this.everyUnit.append(new Option(u, u, u === "hours", u === "hours"));
    this.dailyAt = input("time", "daily_at", "Time of day", { value: "09:00" });
    this.cron = input("text", "cron", "Cron line (minute hour day month weekday)", { placeholder: "0 9 * * 1-5", className: "cron", spellcheck: false });
    this.radios = {
      in: row("in", "In some minutes", "In", this.inMinutes, "minutes"),
      at: row("at", "At a date and time", "At", this.atTime),
      every: row("every", "Repeat every", "Every", this.everyN, this.everyUnit),
      daily: row("daily", "Daily at a time", "Daily at", this.dailyAt),
      cron: row("cron", "Cron line", "Cron", this.cron),
    };
    this.radios.in.checked = true;

    this.error = el("p", "error small sched-error");
    this.error.setAttribute("role", "alert");
    const buttons = el("div", "sched-buttons");
    const cancel = iconButton("btn small", "Cancel", null, "Cancel");
    cancel.addEventListener("click", () => this.closePopover());
    this.submitBtn = el("button", "btn small primary", "Schedule");
    this.submitBtn.type = "submit";
    buttons.append(cancel, this.submitBtn);
    form.append(title, this.preview, group, this.error, buttons);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.schedule();
    });
    form.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      ev.preventDefault();
      ev.stopPropagation();
      this.closePopover();
    });
    // A click anywhere else closes it (the clock button toggles it itself).
    document.addEventListener("pointerdown", (ev) => {
      if (!this.popover.hidden && !this.popover.contains(ev.target) && !this.clock.contains(ev.target)) this.closePopover({ focus: false });
    });
    this.popover = form;
    $("main").append(form);
  }

  togglePopover() {
    if (this.popover.hidden) this.openPopover();
    else this.closePopover();
  }

  /** What the message box holds, split into who it is for and what to say. */
  draft() {
    return splitDraft(this.app.composer.input.value);
  }

  openPopover() {
    const { targets, prompt } = this.draft();
    this.preview.replaceChildren();
    if (targets.length && prompt) {
      this.preview.append("To ", el("strong", null, targets.map((t) => `@${t}`).join(" ")), `: ${snippet(prompt, 120)}`);
    } else {
      this.preview.textContent = "Type the message first, with the @agents it is for: “@claude check CI”.";
    }
    this.error.textContent = "";
    if (!this.atTime.value) this.atTime.value = isoLocal(new Date(Date.now() + 3600_000)).slice(0, 16);
    // Just above the message box, whatever its height.
    const main = $("main").getBoundingClientRect();
    const row = this.app.composer.input.closest(".composer-row")?.getBoundingClientRect();
    this.popover.style.setProperty("--sched-bottom", `${Math.max(8, main.bottom - (row ? row.top : main.bottom - 60) + 6)}px`);
    this.popover.hidden = false;
    this.clock.setAttribute("aria-expanded", "true");
    const picked = Object.values(this.radios).find((r) => r.checked) || this.radios.in;
    picked.focus();
  }

  closePopover({ focus = true } = {}) {
    if (this.popover.hidden) return;
    this.popover.hidden = true;
    this.clock.setAttribute("aria-expanded", "false");
    if (focus) this.clock.focus();
  }

  /** The request body for what the popover says, or throws with what is missing. */
  when() {
    const kind = Object.entries(this.radios).find(([, r]) => r.checked)?.[0] || "in";
    if (kind === "in") {
      const n = Number(this.inMinutes.value);
      if (!Number.isFinite(n) || n < 1) throw new Error("Give the number of minutes from now (1 or more).");
      return { send_at: isoLocal(new Date(Date.now() + Math.round(n * 60) * 1000)) };
    }
    if (kind === "at") {
      const at = this.atTime.value ? new Date(this.atTime.value) : null;
      if (!at || Number.isNaN(at.getTime())) throw new Error("Pick the date and time to send it.");
      return { send_at: isoLocal(at) };
    }
    if (kind === "every") return { spec: `every ${this.everyN.value.trim()} ${this.everyUnit.value}` };
    if (kind === "daily") {
      if (!this.dailyAt.value) throw new Error("Pick the time of day.");
      return { spec: `daily at ${this.dailyAt.value.slice(0, 5)}` };
    }
    if (!this.cron.value.trim()) throw new Error("Type a cron line, e.g. 0 9 * * 1-5 (weekdays at 09:00).");
    return { spec: this.cron.value.trim() };
  }

  async schedule() {
    const { targets, prompt } = this.draft();
    const channel = this.channel;
    this.error.textContent = "";
    let body;
    try {
      if (!targets.length) throw new Error("Mention the agents it is for in the message, e.g. @claude.");
      if (!prompt) throw new Error("Type what to send after the @mentions.");
      body = { prompt, targets, channel, ...this.when() };
    } catch (err) {
      this.error.textContent = err.message;
      return;
    }
    if (this.busy) return;
    // Busy, not disabled: a disabled button would drop the focus (and Escape with it) to the page.
    this.busy = true;
    this.submitBtn.setAttribute("aria-disabled", "true");
    try {
      const made = await schedulesApi.create(body);
      this.fresh = made.id;
      this.onEvent({ action: "created", schedule: made }, false);
      const composer = this.app.composer;
      if (composer.channel === channel) {
        composer.input.value = ""; // scheduled, not sent: the box is free for the next message
        composer.autosize();
      }
      this.closePopover({ focus: false });
      composer.focus();
      toast(`Scheduled for ${made.targets.map((t) => `@${t}`).join(" ")}: ${repeatText(made)}, ${nextText(made.next_run) || "not due"}.`);
    } catch (err) {
      this.error.textContent = err.message; // the server's words: which forms it accepts, which names it knows
    } finally {
      this.busy = false;
      this.submitBtn.removeAttribute("aria-disabled");
    }
  }
}
