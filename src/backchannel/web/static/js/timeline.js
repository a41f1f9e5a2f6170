// The message list of the open channel: rendering, history paging both ways, live inserts,
// "new messages" anchor, and jump-to-message.
import { api } from "./api.js";
import { avatar, colorFor, dayKey, el, fmtDay, fmtFull, fmtTime, openDialog, snippet, toast } from "./dom.js";
import { icon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";

const PAGE = 50;
const GROUP_SECONDS = 300;
const LOOP_GUARD = /^Loop guard:/;
const TYPE_LABELS = { decision: "Decision", rule_proposal: "Rule proposal", job_proposal: "Job proposal" };

export class Timeline {
  /** @param {object} app the controller: me(), agent(name), isMention(text), onSeen(id), ... */
  constructor(app) {
    this.app = app;
    this.scroller = document.getElementById("timeline");
    this.list = document.getElementById("messages");
    this.status = document.getElementById("history-status");
    this.anchor = document.getElementById("new-anchor");
    this.channel = null;
    this.msgs = new Map();
    this.nodes = new Map();
    this.order = [];
    this.hasOlder = false;
    this.hasNewer = false; // true while showing a window of history that does not reach the end
    this.loading = false;
    this.stuck = true;
    this.pending = 0;
    this.generation = 0;
    this.quoteCache = new Map();

    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    new ResizeObserver(() => this.stuck && this.toBottom()).observe(this.list);
    this.anchor.addEventListener("click", () => this.jumpToLatest());
    this.scroller.addEventListener("keydown", (ev) => this.onKey(ev));
  }

  /** Arrow keys move between messages (focusing one shows its actions); Escape returns to the box. */
  onKey(ev) {
    if (ev.key === "Escape") {
      this.app.composer.focus();
      return;
    }
    if (!["ArrowUp", "ArrowDown", "Home", "End"].includes(ev.key)) return;
    const current = ev.target.matches?.(".messages > li.msg") ? ev.target : null;
    if (ev.target !== this.scroller && !current) return; // keys inside a message's own controls
    const items = [...this.list.querySelectorAll(":scope > li.msg")];
    if (!items.length) return;
    ev.preventDefault();
    let i = current ? items.indexOf(current) : items.length;
    if (ev.key === "ArrowUp") i = Math.max(0, i - 1);
    else if (ev.key === "ArrowDown") i = Math.min(items.length - 1, i + 1);
    else i = ev.key === "Home" ? 0 : items.length - 1;
    items[i].focus({ preventScroll: true });
    items[i].scrollIntoView({ block: "nearest" });
    this.onScroll();
  }

  // -- loading ----------------------------------------------------------------------------------
  async open(channel, lastRead) {
    const gen = ++this.generation;
    this.channel = channel;
    this.clear();
    this.setStatus("Loading…");
    const page = await api.history(channel, { limit: PAGE });
    if (gen !== this.generation) return;
    this.hasOlder = page.has_more;
    this.hasNewer = false;
    this.insert(page.messages);
    this.markUnread(lastRead);
    this.setStatus();
    this.stuck = true;
    this.toBottom();
    this.onScroll();
  }

  clear() {
    this.msgs.clear();
    this.nodes.clear();
    this.order = [];
    this.list.replaceChildren();
    this.pending = 0;
    this.hasOlder = false;
    this.hasNewer = false;
    this.stuck = true;
    this.updateAnchor();
  }

  setStatus(text) {
    this.status.replaceChildren();
    if (text) this.status.textContent = text;
    else if (!this.hasOlder && this.channel) {
      const start = el("div", "channel-start");
      start.append(el("strong", null, `#${this.channel}`), el("span", null, "This is the start of the channel."));
      this.status.append(start);
    }
  }

  async loadOlder() {
    if (this.loading || !this.hasOlder || !this.order.length) return;
    const gen = this.generation;
    this.loading = true;
    this.setStatus("Loading earlier messages…");
    try {
      const page = await api.history(this.channel, { limit: PAGE, before: this.order[0] });
      if (gen !== this.generation) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.hasOlder = page.has_more;
      this.insert(page.messages);
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } catch (err) {
      toast(`Could not load history: ${err.message}`);
    } finally {
      this.loading = false;
      if (gen === this.generation) this.setStatus();
    }
  }

  async loadNewer() {
    if (this.loading || !this.hasNewer) return;
    const gen = this.generation;
    this.loading = true;
    try {
      const page = await api.history(this.channel, { limit: PAGE, after: this.order.at(-1) ?? 0 });
      if (gen !== this.generation) return;
      this.hasNewer = page.has_more;
      this.insert(page.messages);
    } finally {
      this.loading = false;
    }
  }

  async jumpToLatest() {
    if (this.hasNewer) await this.open(this.channel, null);
    this.stuck = true;
    this.toBottom();
    this.pending = 0;
    this.updateAnchor();
  }

  /** Show message `id` (in the open channel), loading the history around it if needed. */
  async jumpTo(id) {
    if (!this.nodes.has(id)) {
      const gen = ++this.generation;
      const [older, newer] = await Promise.all([
        api.history(this.channel, { limit: 25, before: id + 1 }),
        api.history(this.channel, { limit: 25, after: id }),
      ]);
      if (gen !== this.generation) return;
      this.clear();
      this.hasOlder = older.has_more;
      this.hasNewer = newer.has_more;
      this.insert([...older.messages, ...newer.messages]);
      this.setStatus();
    }
    const node = this.nodes.get(id);
    if (!node) {
      toast("That message is no longer available.");
      return;
    }
    this.stuck = false;
    node.scrollIntoView({ block: "center" });
    node.classList.remove("flash");
    void node.offsetWidth; // restart the highlight animation
    node.classList.add("flash");
    node.focus({ preventScroll: true });
    this.onScroll();
  }

  // -- live updates -----------------------------------------------------------------------------
  /** A message event for the open channel. Returns true if it was new to this view. */
  add(msg) {
    const known = this.msgs.get(msg.id);
    if (known) {
      // Our own post comes back over the socket too: only re-render if something changed.
      if (known.text !== msg.text || known.edited_at !== msg.edited_at || known.deleted !== msg.deleted) {
        this.update(msg);
      }
      return false;
    }
    if (this.hasNewer) return true; // we are looking at older history; it loads when scrolled to
    const atEnd = !this.order.length || msg.id > this.order.at(-1);
    this.insert([msg]);
    if (atEnd && !this.stuck) {
      this.pending += 1;
      this.updateAnchor();
    }
    return true;
  }

  update(msg) {
    const old = this.nodes.get(msg.id);
    this.quoteCache.set(msg.id, msg);
    for (const q of this.list.querySelectorAll(`.quote[data-ref="${msg.id}"]`)) this.fillQuote(q, msg);
    if (!old) return;
    this.msgs.set(msg.id, msg);
    const fresh = this.render(msg);
    fresh.classList.toggle("grouped", old.classList.contains("grouped"));
    const hadFocus = old.contains(document.activeElement);
    old.replaceWith(fresh);
    if (hadFocus) fresh.focus({ preventScroll: true });
    this.nodes.set(msg.id, fresh);
  }

  refreshAll() {
    // Agent colours or names changed: re-render what is on screen (cheap: only loaded messages).
    for (const msg of this.msgs.values()) this.update(msg);
  }

  lastOwnMessage() {
    const me = this.app.me();
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const m = this.msgs.get(this.order[i]);
      if (m.kind === "human" && m.sender === me && !m.deleted && m.type === "chat") return m;
    }
    return null;
  }

  knownPeople() {
    const names = new Set();
    for (const m of this.msgs.values()) if (m.kind === "human") names.add(m.sender);
    return names;
  }

  // -- scrolling --------------------------------------------------------------------------------
  onScroll() {
    const s = this.scroller;
    const distance = s.scrollHeight - s.scrollTop - s.clientHeight;
    this.stuck = distance < 40 && !this.hasNewer;
    if (s.scrollTop < 800) this.loadOlder();
    if (distance < 800) this.loadNewer();
    if (this.stuck) {
      this.pending = 0;
      this.app.onSeen(this.order.at(-1) ?? 0);
    }
    this.updateAnchor();
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  updateAnchor() {
    const show = this.pending > 0 || (this.hasNewer && this.order.length > 0);
    this.anchor.hidden = !show;
    this.anchor.replaceChildren(icon("down", 16));
    this.anchor.append(
      this.pending > 0 ? `${this.pending} new message${this.pending === 1 ? "" : "s"}` : "Jump to latest",
    );
  }

  // -- rendering --------------------------------------------------------------------------------
  insert(batch) {
    const fresh = batch.filter((m) => !this.msgs.has(m.id)).sort((a, b) => a.id - b.id);
    if (!fresh.length) return;
    for (const msg of fresh) {
      this.msgs.set(msg.id, msg);
      this.quoteCache.set(msg.id, msg);
      const node = this.render(msg);
      this.nodes.set(msg.id, node);
      const idx = sortedIndex(this.order, msg.id);
      const next = idx < this.order.length ? this.nodes.get(this.order[idx]) : null;
      this.order.splice(idx, 0, msg.id);
      const before = next ? divided(next) : null;
      this.list.insertBefore(node, before);
    }
    // Re-decorate the inserted messages and the first one after each of them.
    const touched = new Set();
    for (const msg of fresh) {
      const idx = this.order.indexOf(msg.id);
      touched.add(idx);
      if (idx + 1 < this.order.length) touched.add(idx + 1);
    }
    for (const idx of touched) this.decorate(idx);
  }

  decorate(idx) {
    const msg = this.msgs.get(this.order[idx]);
    const node = this.nodes.get(msg.id);
    const prev = idx > 0 ? this.msgs.get(this.order[idx - 1]) : null;
    const newDay = !prev || dayKey(prev.created_at) !== dayKey(msg.created_at);
    let prevNode = node.previousElementSibling;
    if (prevNode?.classList.contains("unread-divider")) prevNode = prevNode.previousElementSibling;
    const divider = prevNode?.classList.contains("day-divider") ? prevNode : null;
    if (newDay && !divider) {
      const d = el("li", "day-divider");
      d.setAttribute("role", "separator");
      d.append(el("span", null, fmtDay(msg.created_at)));
      divided(node).before(d);
    } else if (!newDay && divider) {
      divider.remove();
    }
    const grouped =
      !newDay &&
      prev &&
      prev.sender === msg.sender &&
      prev.kind === msg.kind &&
      msg.kind !== "system" &&
      !msg.reply_to &&
      msg.type === "chat" &&
      msg.created_at - prev.created_at < GROUP_SECONDS;
    node.classList.toggle("grouped", !!grouped);
  }

  markUnread(lastRead) {
    this.list.querySelector(".unread-divider")?.remove();
    if (lastRead == null) return;
    const me = this.app.me();
    const firstId = this.order.find((id) => id > lastRead && this.msgs.get(id).sender !== me);
    if (firstId == null) return;
    const d = el("li", "unread-divider");
    d.setAttribute("role", "separator");
    d.append(el("span", null, "New"));
    this.nodes.get(firstId).before(d);
  }

  render(msg) {
    const li = el("li", `msg ${msg.kind}`);
    li.id = `m-${msg.id}`;
    li.dataset.id = String(msg.id);
    li.tabIndex = -1;
    if (msg.kind === "system") return this.renderSystem(msg, li);
    const agent = msg.kind === "agent" ? this.app.agent(msg.sender) : null;
    li.style.setProperty("--c", colorFor(msg.sender, agent));
    if (msg.sender === this.app.me() && msg.kind === "human") li.classList.add("mine");
    if (!msg.deleted && this.app.isMention(msg)) li.classList.add("mentions-me");
    if (msg.deleted) li.classList.add("deleted");

    li.append(avatar(msg.sender, agent));
    const body = el("div", "msg-body");
    const meta = el("div", "meta");
    const who = el("span", "sender", msg.sender);
    if (agent && agent.label && agent.label.toLowerCase() !== msg.sender) who.title = agent.label;
    meta.append(who);
    if (msg.kind === "agent") meta.append(el("span", "tag", "agent"));
    if (TYPE_LABELS[msg.type]) meta.append(el("span", `tag type-${msg.type}`, TYPE_LABELS[msg.type]));
    const time = el("time", "time", fmtTime(msg.created_at));
    time.dateTime = new Date(msg.created_at * 1000).toISOString();
    time.title = fmtFull(msg.created_at);
    meta.append(time);
    if (msg.edited_at && !msg.deleted) {
      const edited = el("span", "edited", "(edited)");
      edited.title = `Edited ${fmtFull(msg.edited_at)}`;
      meta.append(edited);
    }
    body.append(meta);

    if (msg.reply_to) {
      const q = el("button", "quote");
      q.type = "button";
      q.dataset.ref = String(msg.reply_to);
      q.addEventListener("click", () => this.app.jump(msg.reply_to));
      this.fillQuote(q, this.quoteCache.get(msg.reply_to));
      if (!this.quoteCache.has(msg.reply_to)) this.fetchQuote(msg.reply_to);
      body.append(q);
    }

    if (msg.deleted) {
      body.append(el("p", "deleted-text", "This message was deleted."));
    } else {
      const text = el("div", "text md");
      text.append(renderMarkdown(msg.text, { mention: (n) => this.app.mention(n) }));
      body.append(text);
      const choices = Array.isArray(msg.metadata?.choices) ? msg.metadata.choices : [];
      if (choices.length) body.append(this.choices(msg, choices));
      const images = (msg.attachments || []).filter((a) => typeof a.url === "string" && /^\/uploads\/[\w.]+$/.test(a.url));
      if (images.length) {
        const box = el("div", "attachments");
        for (const a of images) {
          const link = el("a", "attachment");
          link.href = a.url;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          const img = el("img");
          img.src = a.url;
          img.alt = a.name || "image";
          img.loading = "lazy";
          img.decoding = "async";
          link.append(img);
          box.append(link);
        }
        body.append(box);
      }
    }
    li.append(body);
    if (!msg.deleted) li.append(this.actions(msg));
    return li;
  }

  choices(msg, choices) {
    // A decision card: answering replies to it and mentions the agent, so the agent is woken.
    const box = el("div", "choices");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", `Answer ${msg.sender}`);
    for (const choice of choices.filter((c) => typeof c === "string").slice(0, 10)) {
      const btn = el("button", "btn small choice", choice);
      btn.type = "button";
      btn.addEventListener("click", async () => {
        const prefix = msg.kind === "agent" ? `@${msg.sender} ` : "";
        try {
          const sent = await api.post(this.channel, { text: `${prefix}${choice}`, sender: this.app.me(), reply_to: msg.id });
          this.app.onSent(sent);
        } catch (err) {
          toast(`Not sent: ${err.message}`);
        }
      });
      box.append(btn);
    }
    return box;
  }

  renderSystem(msg, li) {
    li.classList.add("system");
    const line = el("div", "system-line");
    const text = el("span", "text");
    text.append(renderMarkdown(msg.text, { mention: (n) => this.app.mention(n) }));
    line.append(text);
    const time = el("time", "time", fmtTime(msg.created_at));
    time.title = fmtFull(msg.created_at);
    line.append(time);
    if (LOOP_GUARD.test(msg.text)) {
      li.classList.add("loop-guard");
      const btn = el("button", "btn small primary continue-btn", "Continue");
      btn.type = "button";
      btn.addEventListener("click", () => this.app.resume());
      line.append(btn);
    }
    li.append(line);
    return li;
  }

  actions(msg) {
    const bar = el("div", "actions");
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", `Actions for message from ${msg.sender}`);
    const add = (name, label, fn, extra = "") => {
      const b = el("button", `icon-btn small ${extra}`);
      b.type = "button";
      b.title = label;
      b.setAttribute("aria-label", label);
      b.dataset.action = name;
      b.append(icon(name === "delete" ? "trash" : name, 16));
      b.addEventListener("click", fn);
      bar.append(b);
    };
    add("reply", "Reply", () => this.app.composer.replyTo(msg));
    if (msg.kind === "human" && msg.sender === this.app.me()) {
      add("edit", "Edit", () => this.app.composer.edit(msg));
    }
    add("delete", "Delete", () => this.confirmDelete(msg), "danger");
    return bar;
  }

  async confirmDelete(msg) {
    await openDialog({
      title: "Delete message?",
      text: `“${snippet(msg.text, 120) || "(image)"}” from ${msg.sender} will be removed for everyone.`,
      ok: "Delete",
      danger: true,
      submit: () => api.remove(msg.id),
    });
  }

  fillQuote(q, ref) {
    q.replaceChildren(icon("reply", 14));
    if (!ref) {
      q.append(el("span", "quote-text", "…"));
      q.setAttribute("aria-label", "Jump to the message this replies to");
      return;
    }
    q.append(el("strong", null, ref.sender));
    q.append(el("span", "quote-text", ref.deleted ? "deleted message" : snippet(ref.text) || "(image)"));
    q.setAttribute("aria-label", `In reply to ${ref.sender}: ${snippet(ref.text, 60)}. Jump to it`);
  }

  async fetchQuote(id) {
    if (this.quoteCache.has(id)) return;
    this.quoteCache.set(id, null);
    try {
      const ref = await api.message(id);
      this.quoteCache.set(id, ref);
      for (const q of this.list.querySelectorAll(`.quote[data-ref="${id}"]`)) this.fillQuote(q, ref);
    } catch {
      for (const q of this.list.querySelectorAll(`.quote[data-ref="${id}"]`)) {
        q.replaceChildren(icon("reply", 14), el("span", "quote-text", "original message unavailable"));
      }
    }
  }
}

function divided(node) {
  // Insert before a message's day divider (and unread marker) so they stay attached to it.
  let target = node;
  while (target.previousElementSibling?.matches(".day-divider, .unread-divider")) {
    target = target.previousElementSibling;
  }
  return target;
}

function sortedIndex(arr, id) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
