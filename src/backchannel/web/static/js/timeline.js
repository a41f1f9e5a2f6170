// The message list of the open channel: rendering, history paging both ways, live inserts,
// "new messages" anchor, and jump-to-message.
import { api } from "./api.js";
import { addCopyAction } from "./conveniences.js";
import { $, avatar, colorFor, dayKey, el, fmtDay, fmtFull, fmtTime, openDialog, snippet, toast } from "./dom.js";
import { icon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";

const PAGE = 50;
const GROUP_SECONDS = 300;
const LOOP_GUARD = /^Loop guard:/;
const TYPE_LABELS = {
  decision: "Decision",
  rule_proposal: "Rule proposal",
  job_proposal: "Job proposal",
  session_draft: "Session draft",
  summary: "Summary",
};
// What became of the wake-up a mention caused: [label, explanation].
const DELIVERY = {
  queued: ["queued", "Waiting to be typed into the agent's terminal"],
  injected: ["delivered", "Typed into the agent's terminal"],
  failed: ["failed", "Could not be delivered"],
  waiting: ["waiting for approval", "The agent's CLI shows a question a person must answer in its terminal first"],
};

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
    this.lastTop = 0; // scrollTop after our last scroll: only a move up (the reader's) stops following
    this.pending = 0;
    this.generation = 0;
    this.quoteCache = new Map();
    this.liveVersions = new Map(); // id -> a change (edit, delete, card) seen live before it was on screen
    this.readMark = null; // last read id when the channel was opened: where "New" goes
    this.deliveries = new Map(); // message id -> Map(agent name -> {trigger, agent, state, detail})
    this.wanted = new Set(); // message ids whose deliveries to fetch (mentions just posted)
    this.wantTimer = null;
    this.unreadBar = $("unread-bar");
    this.unreadText = $("unread-text");

    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    new ResizeObserver(() => this.stuck && this.toBottom()).observe(this.list);
    this.anchor.addEventListener("click", () => this.jumpToLatest());
    $("jump-unread").addEventListener("click", () => this.jumpToUnread());
    $("mark-read").addEventListener("click", () => this.markRead());
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
    this.liveVersions.clear();
    this.readMark = lastRead ?? null;
    this.unreadPinned = false;
    this.clear();
    this.setStatus("Loading…");
    const page = await api.history(channel, { limit: PAGE });
    if (gen !== this.generation) return;
    this.hasOlder = page.has_more;
    this.hasNewer = false;
    this.insert(page.messages, page.deliveries);
    this.setStatus();
    this.stuck = true;
    this.toBottom();
    this.onScroll();
  }

  clear() {
    this.msgs.clear();
    this.nodes.clear();
    this.deliveries.clear();
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
      this.insert(page.messages, page.deliveries);
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
      this.lastTop = this.scroller.scrollTop;
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
      this.insert(page.messages, page.deliveries);
    } finally {
      this.loading = false;
    }
  }

  async jumpToLatest() {
    if (this.hasNewer) await this.open(this.channel, this.readMark);
    this.stuck = true;
    this.toBottom();
    this.pending = 0;
    this.updateAnchor();
  }

  /** Show the first message after the read mark, with the "New" divider above it. */
  async jumpToUnread() {
    const mark = this.readMark;
    if (mark == null) return;
    let node = this.list.querySelector(".unread-divider");
    if (!node) {
      try {
        const page = await api.history(this.channel, { limit: 1, after: mark });
        if (!page.messages.length) return this.markRead();
        await this.jumpTo(page.messages[0].id, { flash: false });
      } catch (err) {
        toast(`Could not load the first unread message: ${err.message}`);
        return;
      }
      node = this.list.querySelector(".unread-divider");
    }
    if (!node) return;
    this.stuck = false;
    this.unreadPinned = true;
    const place = () => {
      node.scrollIntoView({ block: "start" });
      this.scroller.scrollTop -= 48; // clear of the unread bar
      this.lastTop = this.scroller.scrollTop;
    };
    place();
    // Rows above that just rendered (content-visibility) change size: place it again once settled.
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    if (node.isConnected) place();
    this.updateUnreadBar();
  }

  /** Forget the read mark of this visit: no divider, no bar (the read position itself moves on scroll). */
  markRead() {
    this.readMark = null;
    this.unreadPinned = false;
    this.list.querySelector(".unread-divider")?.remove();
    this.app.markRead(this.channel, this.order.at(-1) ?? 0);
    this.updateUnreadBar();
  }

  /** Show message `id` (in the open channel), loading the history around it if needed. */
  async jumpTo(id, { flash = true } = {}) {
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
      this.insert([...older.messages, ...newer.messages], { ...older.deliveries, ...newer.deliveries });
      this.setStatus();
    }
    if (!flash) return;
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
    // Watched as it arrives: it is not "new" (the divider only marks what came while you were away).
    const seen = atEnd && this.stuck && !document.hidden && this.readMark != null;
    if (seen && !this.list.querySelector(".unread-divider")) this.readMark = msg.id;
    this.insert([msg]);
    if (atEnd && !this.stuck) {
      this.pending += 1;
      this.updateAnchor();
    } else if (this.stuck) {
      this.toBottom(); // a reader at the bottom stays there, however fast messages come
    }
    if (!msg.deleted && msg.kind !== "system" && msg.text.includes("@")) this.wantDeliveries(msg.id);
    return true;
  }

  update(msg) {
    const old = this.nodes.get(msg.id);
    this.quoteCache.set(msg.id, msg);
    for (const q of this.list.querySelectorAll(`.quote[data-ref="${msg.id}"]`)) fillQuote(q, msg);
    if (!old) {
      // Not on screen yet: a page that is loading may have been read before this change, so
      // insert() takes this version over the one it brings.
      if (msg.channel === this.channel) this.liveVersions.set(msg.id, msg);
      return;
    }
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

  /** An agent was renamed: its messages (and deliveries) follow its identity, not its old name. */
  renameAgent(old, name) {
    const follow = (m) => (m && m.kind === "agent" && m.sender === old ? { ...m, sender: name } : m);
    for (const map of [this.msgs, this.quoteCache, this.liveVersions]) {
      for (const [id, m] of map) map.set(id, follow(m));
    }
    for (const byAgent of this.deliveries.values()) {
      const entry = byAgent.get(old);
      if (entry) {
        byAgent.delete(old);
        byAgent.set(name, { ...entry, agent: name });
      }
    }
    this.refreshAll();
  }

  renamePerson(personId, old, name) {
    const follow = (m) =>
      m && m.kind === "human" && (personId != null && m.person_id != null ? m.person_id === personId : m.sender === old)
        ? { ...m, sender: name }
        : m;
    for (const map of [this.msgs, this.quoteCache, this.liveVersions]) {
      for (const [id, m] of map) map.set(id, follow(m));
    }
    this.refreshAll();
  }

  lastOwnMessage() {
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const m = this.msgs.get(this.order[i]);
      if (this.app.isOwn(m) && !m.deleted && m.type === "chat") return m;
    }
    return null;
  }

  // -- delivery of mentions ---------------------------------------------------------------------
  /** Merge {message id: [delivery, ...]} from the server into what the timeline shows. */
  setDeliveries(map) {
    for (const [key, list] of Object.entries(map || {})) {
      const id = Number(key);
      if (!this.msgs.has(id)) continue;
      const known = this.deliveries.get(id);
      const byAgent = new Map();
      for (const d of list) {
        // A live event may have overtaken this answer on the way: keep whichever is newer.
        const live = known?.get(d.agent);
        const newer = live && (live.trigger > d.trigger || (live.trigger === d.trigger && (live.updated_at ?? 0) > (d.updated_at ?? 0)));
        byAgent.set(d.agent, newer ? live : d);
      }
      this.deliveries.set(id, byAgent);
      this.paintDeliveries(id);
    }
  }

  /** A live "delivery" event: new state of one wake-up, for the messages it carries. */
  onDelivery(e) {
    let ids = Array.isArray(e.message_ids) ? e.message_ids : null;
    if (!ids) {
      ids = [];
      for (const [id, byAgent] of this.deliveries) {
        for (const d of byAgent.values()) if (d.trigger === e.trigger) ids.push(id);
      }
    }
    const entry = { trigger: e.trigger, agent: e.agent, state: e.state, detail: e.detail || "", updated_at: e.updated_at };
    for (const id of ids) {
      if (!this.msgs.has(id)) continue;
      if (!this.deliveries.has(id)) this.deliveries.set(id, new Map());
      const byAgent = this.deliveries.get(id);
      const known = byAgent.get(e.agent);
      // A superseded wake-up is replaced by a newer one; never let an old report win over it.
      if (known && known.trigger > e.trigger) continue;
      if (e.state === "superseded") byAgent.delete(e.agent);
      else byAgent.set(e.agent, entry);
      this.paintDeliveries(id);
    }
  }

  /** Presence changed: "queued (agent offline)" labels follow it. */
  repaintDeliveriesFor(agent) {
    for (const [id, byAgent] of this.deliveries) if (byAgent.has(agent)) this.paintDeliveries(id);
  }

  wantDeliveries(id) {
    this.wanted.add(id);
    clearTimeout(this.wantTimer);
    this.wantTimer = setTimeout(async () => {
      // A new mention can take over an earlier failed or queued wake-up: refresh those too.
      const open = [...this.deliveries]
        .filter(([, byAgent]) => [...byAgent.values()].some((d) => d.state !== "injected"))
        .map(([i]) => i);
      const ids = [...new Set([...open, ...this.wanted])].filter((i) => this.msgs.has(i)).slice(-200);
      this.wanted.clear();
      if (!ids.length) return;
      try {
        this.setDeliveries((await api.deliveries(ids)).deliveries);
      } catch {
        /* the next page load shows it; live events keep updating what is known */
      }
    }, 60);
  }

  paintDeliveries(id) {
    const node = this.nodes.get(id);
    if (!node) return;
    const body = node.querySelector(".msg-body") || node;
    body.querySelector(".deliveries")?.remove();
    const byAgent = this.deliveries.get(id);
    if (!byAgent || !byAgent.size || this.msgs.get(id)?.deleted) return;
    const box = el("div", "deliveries");
    box.setAttribute("role", "status");
    for (const d of [...byAgent.values()].sort((a, b) => a.agent.localeCompare(b.agent))) {
      box.append(this.deliveryChip(d));
    }
    body.append(box);
  }

  deliveryChip(d) {
    const [label, why] = DELIVERY[d.state] || [d.state, ""];
    const chip = el("span", `delivery-chip delivery-${d.state}`);
    chip.dataset.agent = d.agent;
    chip.dataset.trigger = String(d.trigger);
    chip.dataset.state = d.state;
    const agent = this.app.agent(d.agent);
    chip.style.setProperty("--c", colorFor(d.agent, agent));
    chip.append(el("span", "who", `@${d.agent}`), el("span", "what", label));
    let title = why;
    if (d.state === "queued" && agent?.state === "offline") {
      chip.append(el("span", "why", "agent offline"));
      title = "The agent is offline: it gets this when it comes back";
    }
    if (d.state === "waiting" && d.detail) {
      const text = el("span", "dialog-text", d.detail.slice(0, 500)); // its lines, as the terminal shows them
      chip.append(text);
      title = `${why}:\n${d.detail}`;
    }
    if (d.state === "failed") {
      if (d.detail) chip.append(el("span", "why", snippet(d.detail, 120)));
      const retry = el("button", "btn small retry", "Retry");
      retry.type = "button";
      retry.setAttribute("aria-label", `Retry delivery to ${d.agent}`);
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          const fresh = await api.retry(d.trigger);
          // The live event says the same; this just does not wait for it.
          for (const [id, byAgent] of this.deliveries) {
            const known = byAgent.get(d.agent);
            if (known && known.trigger === d.trigger) {
              byAgent.set(d.agent, fresh);
              this.paintDeliveries(id);
            }
          }
        } catch (err) {
          retry.disabled = false;
          toast(`Could not retry: ${err.message}`);
        }
      });
      chip.append(retry);
    }
    chip.title = title;
    return chip;
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
    const movedUp = s.scrollTop < this.lastTop - 1;
    this.lastTop = s.scrollTop;
    if (this.hasNewer) this.stuck = false;
    else if (distance < 40) this.stuck = true;
    else if (movedUp) this.stuck = false;
    // Otherwise content grew below us (a burst of messages, images decoding): keep following.
    else if (this.stuck) this.toBottom();
    if (s.scrollTop < 800) this.loadOlder();
    if (distance < 800) this.loadNewer();
    if (this.stuck) {
      this.pending = 0;
      this.app.onSeen(this.order.at(-1) ?? 0);
    }
    this.updateAnchor();
    this.updateUnreadBar();
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;
  }

  /** "N new messages · Jump to first unread · Mark read" while the first unread one is out of sight above. */
  updateUnreadBar() {
    const mark = this.readMark;
    let show = false;
    let count = 0;
    if (mark != null && this.order.length) {
      const me = (id) => this.app.isOwn(this.msgs.get(id));
      count = this.order.filter((id) => id > mark && !me(id)).length;
      const divider = this.list.querySelector(".unread-divider");
      if (this.unreadPinned) {
        show = count > 0; // after "Jump to first unread", "Mark read" stays at hand
      } else if (divider) {
        show = divider.getBoundingClientRect().bottom < this.scroller.getBoundingClientRect().top;
      } else {
        show = count > 0 && this.hasOlder && this.order[0] > mark; // the first unread is not loaded yet
      }
    }
    this.unreadBar.hidden = !show;
    if (show) {
      const more = (this.hasOlder && this.order[0] > mark) || this.hasNewer ? "+" : "";
      this.unreadText.textContent = `${count}${more} new message${count === 1 && !more ? "" : "s"}`;
    }
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
  insert(batch, deliveries) {
    const fresh = batch
      .filter((m) => m.job_id == null && !this.msgs.has(m.id))
      .map((m) => newest(m, this.liveVersions.get(m.id)))
      .sort((a, b) => a.id - b.id);
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
    if (deliveries) this.setDeliveries(deliveries);
    this.markUnread();
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

  /**
   * Put "New" above the first message after the read mark, but only where we know it is the first:
   * the message loaded before it is read (or ours), or nothing older exists. Otherwise the unread bar
   * offers "Jump to first unread" instead of marking the oldest message that happens to be loaded.
   */
  markUnread() {
    const old = this.list.querySelector(".unread-divider");
    const mark = this.readMark;
    let firstId = null;
    if (mark != null) {
      const idx = this.order.findIndex((id) => id > mark && !this.app.isOwn(this.msgs.get(id)));
      if (idx >= 0 && (idx > 0 || !this.hasOlder || this.order[0] <= mark)) firstId = this.order[idx];
    }
    const node = firstId == null ? null : this.nodes.get(firstId);
    if (old && node && old.nextElementSibling === node) return;
    old?.remove();
    if (!node) return;
    const d = el("li", "unread-divider");
    d.setAttribute("role", "separator");
    d.append(el("span", null, "New"));
    node.before(d);
  }

  render(msg) {
    const li = el("li", `msg ${msg.kind}`);
    li.id = `m-${msg.id}`;
    li.dataset.id = String(msg.id);
    li.tabIndex = -1;
    if (msg.kind === "system" && /^session_(start|phase|end)$/.test(msg.type) && !msg.deleted) {
      return this.app.sessions.renderBanner(msg, li); // js/sessions.js
    }
    if (msg.kind === "system") return this.renderSystem(msg, li);
    if (msg.type === "job_created" && !msg.deleted) return this.app.jobs.renderCreated(msg, li);
    const agent = msg.kind === "agent" ? this.app.agent(msg.sender) : null;
    li.style.setProperty("--c", colorFor(msg.sender, agent));
    if (this.app.isOwn(msg)) li.classList.add("mine");
    if (!msg.deleted && this.app.isMention(msg)) li.classList.add("mentions-me");
    if (msg.deleted) li.classList.add("deleted");
    if (msg.type === "summary" && !msg.deleted) li.classList.add("summary-card");

    li.append(avatar(msg.sender, agent));
    const body = el("div", "msg-body");
    const meta = el("div", "meta");
    // An agent's name and role pill open its role picker (js/agents.js).
    if (agent) meta.append(...this.app.agentsUI.senderParts(msg, agent));
    else meta.append(el("span", "sender", msg.sender));
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
    this.app.pins.mark(li, meta, msg); // the pin marker (js/pins.js)
    this.app.sessions.markOutput(li, meta, msg); // "Session output" (js/sessions.js)
    body.append(meta);

    if (msg.reply_to) {
      const q = el("button", "quote");
      q.type = "button";
      q.dataset.ref = String(msg.reply_to);
      q.addEventListener("click", () => this.app.jump(msg.reply_to));
      fillQuote(q, this.quoteCache.get(msg.reply_to));
      if (!this.quoteCache.has(msg.reply_to)) this.fetchQuote(msg.reply_to);
      body.append(q);
    }

    if (msg.deleted) {
      body.append(el("p", "deleted-text", "This message was deleted."));
    } else {
      const text = el("div", "text md");
      if (msg.type === "job_proposal") text.append(this.app.jobs.renderProposal(msg));
      else if (msg.type === "rule_proposal") text.append(this.app.rules.renderProposal(msg));
      else if (msg.type === "session_draft") text.append(this.app.sessions.renderDraft(msg));
      else text.append(renderMarkdown(msg.text, { mention: (n) => this.app.mention(n) }));
      if (msg.edited_at) {
        // A grouped follow-up hides its header: this copy of "(edited)" shows after the text instead.
        const edited = el("span", "edited edited-inline", "(edited)");
        edited.title = `Edited ${fmtFull(msg.edited_at)}`;
        const last = text.lastElementChild;
        (last?.tagName === "P" ? last : text).append(" ", edited);
      }
      body.append(text);
      const choices = Array.isArray(msg.metadata?.choices) ? msg.metadata.choices : [];
      if (choices.length) body.append(this.choices(msg, choices));
      const images = renderAttachments(msg);
      if (images) body.append(images);
    }
    li.append(body);
    if (!msg.deleted) li.append(this.actions(msg));
    if (this.deliveries.has(msg.id)) queueMicrotask(() => this.paintDeliveries(msg.id));
    return li;
  }

  choices(msg, choices) {
    return renderChoices(msg, choices, (card) => this.update(card));
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
    const own = this.app.isOwn(msg);
    if (own) add("edit", "Edit", () => this.app.composer.edit(msg));
    // Once the server tells us who we are, only our own messages can be deleted from here.
    if (own || !this.app.knowsMe()) add("delete", "Delete", () => this.confirmDelete(msg), "danger");
    this.app.jobs.addActions(bar, msg);
    this.app.pins.addActions(bar, msg); // pin, mark done, unpin (js/pins.js)
    addCopyAction(this.app, bar, msg); // "Copy as Markdown" (js/conveniences.js)
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

  async fetchQuote(id) {
    if (this.quoteCache.has(id)) return;
    this.quoteCache.set(id, null);
    try {
      const ref = await api.message(id);
      this.quoteCache.set(id, ref);
      for (const q of this.list.querySelectorAll(`.quote[data-ref="${id}"]`)) fillQuote(q, ref);
    } catch {
      for (const q of this.list.querySelectorAll(`.quote[data-ref="${id}"]`)) {
        q.replaceChildren(icon("reply", 14), el("span", "quote-text", "original message unavailable"));
      }
    }
  }
}

/** A message's images, each a link to the full picture (null when it has none). */
export function renderAttachments(msg) {
  const images = (msg.attachments || []).filter((a) => typeof a.url === "string" && /^\/uploads\/[\w.]+$/.test(a.url));
  if (!images.length) return null;
  const box = el("div", "attachments");
  for (const a of images) {
    const link = el("a", "attachment");
    link.href = a.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.setAttribute("aria-label", `Open image ${a.name || ""}`.trim());
    const img = el("img");
    img.src = a.url;
    img.alt = a.name || "image";
    img.loading = "lazy";
    img.decoding = "async";
    link.append(img);
    box.append(link);
  }
  return box;
}

/**
 * A decision card: a person answers it once (POST /api/messages/{id}/decide); a resolved card
 * shows "<person> chose X" for everyone and no buttons. `show(card)` re-renders it with the
 * server's copy (after an answer, or after a 409 when someone else answered first).
 */
export function renderChoices(msg, choices, show) {
  if (msg.metadata?.resolved) {
    const receipt = el("p", "choice-receipt");
    receipt.append(`${msg.metadata.chosen_by} chose `, el("strong", null, String(msg.metadata.chosen)));
    return receipt;
  }
  const box = el("div", "choices");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `Answer ${msg.sender}`);
  let busy = false; // one answer in flight (buttons stay enabled so the focus stays on the card)
  for (const choice of choices.filter((c) => typeof c === "string").slice(0, 10)) {
    const btn = el("button", "btn small choice", choice);
    btn.type = "button";
    btn.addEventListener("click", async () => {
      if (busy) return;
      busy = true;
      try {
        show(await api.decide(msg.id, choice));
      } catch (err) {
        toast(`Not answered: ${err.message}`);
        const card = await api.message(msg.id).catch(() => null);
        if (card) show(card);
      } finally {
        busy = false;
      }
    });
    box.append(btn);
  }
  return box;
}

/** A reply's quote button: who and what it answers (`ref` null while it loads). */
export function fillQuote(q, ref) {
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

/**
 * Of a message as a page brought it and as an event brought it, the one to show: the event's,
 * whatever it changed (an edit, a delete, a decision answered, a card's status). Should the page
 * have been read after a later change still, that change's own event comes after and updates it.
 */
function newest(paged, live) {
  return live && !paged.deleted ? live : paged;
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
