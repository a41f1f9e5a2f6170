// Pins: pin a message from its toolbar, mark it done, unpin it; a marker on pinned messages and a
// panel (from the topbar's Pins button) listing the open channel's pins, newest first.
//
// The server is the truth: GET /api/pins?channel= on open and on every (re)connect, then `pin`
// events (every page sees every change), `message_edited` / `message_deleted` (a deleted message
// loses its pin) and `channel_cleared`.
import { request } from "./api.js";
import { $, el, fmtAgo, fmtFull, iconButton, snippet, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";
import { loadWithLate } from "./ordered.js";

const enc = encodeURIComponent;
const pinsApi = {
  list: (channel) => request("GET", `/api/pins?channel=${enc(channel)}`),
  pin: (id) => request("POST", `/api/messages/${id}/pin`),
  unpin: (id) => request("DELETE", `/api/messages/${id}/pin`),
  setDone: (id, done) => request("PATCH", `/api/messages/${id}/pin`, { json: { done } }),
};

const SHAPES = {
  pin: ["M9 3h6", "M10 3v6l-3.5 5h11L14 9V3", "M12 14v7"],
  "pin-off": ["M9 3h6", "M10 3v6l-3.5 5h11L14 9V3", "M12 14v7", "M4 4l16 16"],
};

/** A stroke icon in the style of icons.js for the shapes only pins use. */
export function pinIcon(name, size = 16) {
  return pathIcon(SHAPES[name], size);
}

export class Pins {
  constructor(app) {
    this.app = app;
    this.channel = null; // the channel whose pins are loaded
    this.pins = new Map(); // message id -> message with `pin`
    this.generation = 0;
    this.build();
  }

  build() {
    this.toggle = $("pins-toggle");
    this.badge = $("pins-badge");
    this.toggle.prepend(pinIcon("pin", 16));
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.open()));

    const panel = el("section", "pins-panel");
    panel.id = "pins-panel";
    panel.hidden = true;
    panel.setAttribute("aria-labelledby", "pins-heading");
    const head = el("div", "pins-head");
    this.heading = el("h2", null, "Pinned");
    this.heading.id = "pins-heading";
    this.heading.tabIndex = -1;
    const close = iconButton("icon-btn", "Close pins", icon("x"));
    close.addEventListener("click", () => this.close());
    head.append(this.heading, close);
    this.list = el("ol", "pins-list");
    this.empty = el("p", "pins-empty muted");
    panel.append(head, this.list, this.empty);
    panel.addEventListener("keydown", (ev) => this.onKey(ev));
    this.panel = panel;
    $("main").append(panel);
  }

  // -- loading ----------------------------------------------------------------------------------
  /** The open channel changed: its pins replace the last one's. */
  async setChannel(name) {
    const gen = ++this.generation;
    if (name !== this.channel) {
      this.channel = name;
      this.pins.clear();
      this.render();
    }
    // Events that arrive while the list loads may be newer than it: they are applied again after it.
    const loaded = await loadWithLate(this, () => pinsApi.list(name), "pins");
    if (!loaded || gen !== this.generation) return;
    const before = new Set(this.pins.keys());
    this.pins = new Map(loaded.result.map((m) => [m.id, m]));
    for (const e of loaded.late) this.onEvent(e, false);
    for (const id of new Set([...before, ...this.pins.keys()])) this.repaint(id);
    this.render();
  }

  /** After a (re)connect: catch up on what changed while the page was away. */
  refresh() {
    if (this.channel) this.setChannel(this.channel);
  }

  renameChannel(old, name) {
    if (this.channel !== old) return;
    this.channel = name;
    for (const [id, m] of this.pins) this.pins.set(id, { ...m, channel: name });
    this.render();
  }

  /** A person's new name shows on the pins they made and wrote (names are unique among people). */
  renamePerson(old, name) {
    let changed = false;
    for (const [id, m] of this.pins) {
      const by = m.pin.pinned_by === old;
      const wrote = m.kind === "human" && m.sender === old;
      if (!by && !wrote) continue;
      this.pins.set(id, { ...m, sender: wrote ? name : m.sender, pin: { ...m.pin, pinned_by: by ? name : m.pin.pinned_by } });
      changed = true;
    }
    if (changed) this.render();
  }

  // -- live events ------------------------------------------------------------------------------
  onEvent(e, live = true) {
    if (live) this.late?.push(e);
    const msg = e.message;
    if (!msg || msg.channel !== this.channel) return;
    if (e.action === "unpinned" || !e.pin || msg.deleted) this.pins.delete(msg.id);
    else this.pins.set(msg.id, { ...msg, pin: e.pin });
    this.repaint(msg.id);
    this.render();
  }

  /** An edit shows in the panel; a deleted message's pin is gone (the server dropped it too). */
  onMessage(msg) {
    const known = this.pins.get(msg?.id);
    if (!known) return;
    if (msg.deleted) this.pins.delete(msg.id);
    else this.pins.set(msg.id, { ...msg, pin: known.pin });
    this.render();
  }

  /** /clear removed the channel's timeline: its pins went with it (job threads' stay). */
  onCleared(channel) {
    if (channel !== this.channel) return;
    for (const [id, m] of this.pins) if (m.job_id == null) this.pins.delete(id);
    this.render();
  }

  // -- the timeline -----------------------------------------------------------------------------
  /** Called by the timeline for every message it renders: the marker on a pinned one. */
  mark(li, meta, msg) {
    const pinned = this.pins.get(msg.id);
    if (!pinned || msg.deleted) return;
    const done = pinned.pin.done;
    li.classList.add("pinned");
    li.classList.toggle("pin-done", done);
    const marker = el("span", "pin-marker");
    marker.append(done ? icon("check", 13) : pinIcon("pin", 13), done ? "Done" : "Pinned");
    marker.title = `Pinned by ${pinned.pin.pinned_by}, ${fmtFull(pinned.pin.pinned_at)}${done ? " · marked done" : ""}`;
    meta.append(marker);
  }

  /** The message toolbar: Pin, or Mark done / Unpin on a pinned message. */
  addActions(bar, msg) {
    if (msg.deleted || msg.kind === "system") return;
    const pinned = this.pins.get(msg.id);
    if (!pinned) {
      const b = iconButton("icon-btn small", "Pin", pinIcon("pin"));
      b.dataset.action = "pin";
      b.addEventListener("click", () => this.pin(msg));
      bar.append(b);
      return;
    }
    const done = pinned.pin.done;
    const d = iconButton("icon-btn small", done ? "Mark not done" : "Mark done", icon("check", 16));
    d.dataset.action = "pin-done";
    d.setAttribute("aria-pressed", String(done));
    d.addEventListener("click", () => this.setDone(msg.id, !done));
    const u = iconButton("icon-btn small", "Unpin", pinIcon("pin-off"));
    u.dataset.action = "unpin";
    u.addEventListener("click", () => this.unpin(msg.id));
    bar.append(d, u);
  }

  /** Re-render a message of the open timeline after its pin changed (keeps the focus on it). */
  repaint(id) {
    const msg = this.app.timeline.msgs.get(id);
    if (msg) this.app.timeline.update(msg);
    const inThread = this.app.jobs.thread?.msgs?.get(id); // a job thread's message, if it is open
    if (inThread) this.app.jobs.onThreadUpdate(inThread);
  }

  // -- changes ------------------------------------------------------------------------------------
  async pin(msg) {
    try {
      const pinned = await pinsApi.pin(msg.id);
      this.onEvent({ action: "pinned", message: pinned, pin: pinned.pin });
    } catch (err) {
      toast(`Could not pin: ${err.message}`);
    }
  }

  async setDone(id, done) {
    try {
      const pinned = await pinsApi.setDone(id, done);
      this.onEvent({ action: "updated", message: pinned, pin: pinned.pin });
    } catch (err) {
      toast(`Could not update the pin: ${err.message}`);
    }
  }

  async unpin(id) {
    const msg = this.pins.get(id);
    try {
      await pinsApi.unpin(id);
    } catch (err) {
      if (err.status !== 404) return toast(`Could not unpin: ${err.message}`);
    }
    if (msg) this.onEvent({ action: "unpinned", message: msg, pin: null });
  }

  // -- the panel --------------------------------------------------------------------------------
  isOpen() {
    return !this.panel.hidden;
  }

  open() {
    // Just under the top bar, however many rows it wrapped onto.
    const bar = document.querySelector(".topbar");
    this.panel.style.setProperty("--pins-top", `${(bar ? bar.offsetTop + bar.offsetHeight : 56) + 4}px`);
    this.panel.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    this.render();
    (this.list.querySelector(".pin-jump") || this.heading).focus();
  }

  close({ focus = true } = {}) {
    if (!this.isOpen()) return;
    this.panel.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    if (focus) this.toggle.focus();
  }

  onKey(ev) {
    if (ev.key === "Escape") {
      ev.preventDefault();
      ev.stopPropagation();
      this.close();
      return;
    }
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const jumps = [...this.list.querySelectorAll(".pin-jump")];
    const at = jumps.indexOf(document.activeElement?.closest(".pin-item")?.querySelector(".pin-jump"));
    if (!jumps.length) return;
    ev.preventDefault();
    const next = at < 0 ? 0 : Math.max(0, Math.min(jumps.length - 1, at + (ev.key === "ArrowDown" ? 1 : -1)));
    jumps[next].focus();
  }

  sorted() {
    return [...this.pins.values()].sort((a, b) => b.pin.pinned_at - a.pin.pinned_at || b.id - a.id);
  }

  render() {
    const items = this.sorted();
    const open = items.filter((m) => !m.pin.done).length;
    this.badge.hidden = open === 0;
    this.badge.textContent = open > 99 ? "99+" : String(open);
    this.toggle.setAttribute("aria-label", open ? `Pins, ${open} open` : "Pins");
    this.toggle.title = this.channel ? `Pinned messages in #${this.channel}` : "Pinned messages";
    if (!this.isOpen()) return;
    const where = this.channel ? ` in #${this.channel}` : "";
    this.heading.textContent = `Pinned${where}`;
    const focused = document.activeElement?.closest(".pin-item");
    const refocus = focused ? [focused.dataset.id, focused.contains(document.activeElement) ? document.activeElement.dataset.role : null] : null;
    this.list.replaceChildren(...items.map((m) => this.item(m)));
    this.empty.hidden = items.length > 0;
    this.empty.textContent = `Nothing is pinned${where}. Pin a message from its toolbar (hover it, or focus it and press Tab) to keep it here as a to-do.`;
    if (refocus) {
      const li = this.list.querySelector(`.pin-item[data-id="${refocus[0]}"]`);
      const target = li?.querySelector(`[data-role="${refocus[1]}"]`) || li?.querySelector(".pin-jump");
      (target || this.list.querySelector(".pin-jump") || this.heading).focus();
    }
  }

  item(msg) {
    const li = el("li", `pin-item${msg.pin.done ? " done" : ""}`);
    li.dataset.id = String(msg.id);
    const text = snippet(msg.text, 160) || (msg.attachments?.length ? "(image)" : "");
    const where = msg.job_id != null ? ` in job #${msg.job_id}` : "";
    const jump = el("button", "pin-jump");
    jump.type = "button";
    jump.dataset.role = "jump";
    jump.setAttribute("aria-label", `${msg.pin.done ? "Done: " : ""}${msg.sender}${where}: ${snippet(msg.text, 80)}. Jump to it`);
    const head = el("span", "pin-who");
    head.append(el("strong", null, msg.sender));
    if (where) head.append(el("span", "tag", `job #${msg.job_id}`));
    const when = el("time", "time", fmtAgo(msg.created_at));
    when.title = fmtFull(msg.created_at);
    head.append(when);
    jump.append(head, el("span", "pin-text", text));
    jump.addEventListener("click", () => this.jump(msg));
    const by = el("span", "pin-by small muted", `pinned by ${msg.pin.pinned_by} · ${fmtAgo(msg.pin.pinned_at)}`);
    by.title = fmtFull(msg.pin.pinned_at);
    const actions = el("div", "pin-item-actions");
    const done = iconButton(
      `btn small pin-done-btn${msg.pin.done ? " is-done" : ""}`,
      msg.pin.done ? `Mark not done: ${snippet(msg.text, 40)}` : `Mark done: ${snippet(msg.text, 40)}`,
      icon("check", 14),
      msg.pin.done ? "Done" : "Mark done",
    );
    done.dataset.role = "done";
    done.setAttribute("aria-pressed", String(msg.pin.done));
    done.addEventListener("click", () => this.setDone(msg.id, !msg.pin.done));
    const unpin = iconButton("icon-btn small", `Unpin: ${snippet(msg.text, 40)}`, pinIcon("pin-off", 15));
    unpin.dataset.role = "unpin";
    unpin.addEventListener("click", () => this.unpin(msg.id));
    actions.append(by, done, unpin);
    li.append(jump, actions);
    return li;
  }

  async jump(msg) {
    this.close({ focus: false }); // the message gets the focus, and nothing covers it
    if (msg.job_id != null) return this.app.jobs.openJob(msg.job_id, { show: msg.id });
    await this.app.jump(msg.id, msg.channel);
  }
}
