// The controller: state of the room, the live feed, and the wiring between the parts.
import { Agents, LABEL_MAX } from "./agents.js";
import { api } from "./api.js";
import { Composer } from "./composer.js";
import { confirmClear, onChannelCleared } from "./conveniences.js";
import { $, colorFor, el, fmtAgo, fmtFull, openDialog, snippet, store, toast } from "./dom.js";
import { Help } from "./help.js";
import { hydrateIcons, icon } from "./icons.js";
import { Jobs } from "./jobs.js";
import { Live } from "./live.js";
import { Pins } from "./pins.js";
import { Rules } from "./rules.js";
import { Schedules } from "./schedules.js";
import { Sessions } from "./sessions.js";
import { RoomSettings } from "./settings.js";
import { Search } from "./search.js";
import { renderChannels, renderRoster } from "./sidebar.js";
import { Timeline } from "./timeline.js";

const HUMAN_NAME = /^[A-Za-z][A-Za-z0-9 _.-]{0,31}$/;
const CONN_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  "signed-out": "Signed out: reload to sign in",
};

class App {
  constructor() {
    this.channels = new Map();
    this.agents = new Map();
    this.unread = new Map(); // channel -> Set of unread message ids (live and counted ones merge)
    this.lastRead = store.get("read", {});
    this.channel = null;
    this.name = store.get("name", null);
    this.sound = store.get("sound", false);
    this.notify = store.get("notify", false) && "Notification" in window;
    this.level = ["all", "mentions", "off"].includes(store.get("level", "all")) ? store.get("level", "all") : "all";
    this.muted = new Set(store.get("muted", []));
    this.whoami = null; // {person_id, name} from GET /api/me, when the server has it
    this.timeline = new Timeline(this);
    this.composer = new Composer(this);
    this.search = new Search(this);
    this.jobs = new Jobs(this);
    this.pins = new Pins(this); // pins: toolbar, marker, panel
    this.help = new Help(); // "?" and the first-visit tour
    this.agentsUI = new Agents(this); // role, colour, label, hat, forget: the agent popover
    this.rules = new Rules(this);
    this.settings = new RoomSettings(this);
    this.schedules = new Schedules(this); // the strip above the composer and its clock popover
    this.sessions = new Sessions(this); // the launcher, the session bar, banners and draft cards
    this.live = new Live({
      onEvent: (e) => this.onEvent(e),
      onState: (s) => this.setConn(s),
      onConnected: (first) => this.sync(first),
    });
  }

  start() {
    hydrateIcons();
    this.showName();
    this.wire();
    this.live.start();
    this.help.maybeFirstVisit();
    // "3 min ago" in the roster has to move on by itself.
    setInterval(() => {
      if (this.agentList().some((a) => a.state === "offline")) renderRoster(this);
    }, 30_000);
  }

  wire() {
    $("new-channel").addEventListener("click", () => this.createChannel());
    $("rename-channel").addEventListener("click", () => this.renameChannel());
    $("delete-channel").addEventListener("click", () => this.deleteChannel());
    $("paused-continue").addEventListener("click", () => this.resume());
    $("summary-toggle").addEventListener("click", () => this.toggleSummary());
    $("me-button").addEventListener("click", () => this.askName(false));
    $("menu-toggle").addEventListener("click", () => this.toggleSidebar());
    $("scrim").addEventListener("click", () => this.closeSidebar());
    const sound = $("sound-toggle");
    sound.setAttribute("aria-pressed", String(this.sound));
    sound.addEventListener("click", () => {
      this.sound = !this.sound;
      store.set("sound", this.sound);
      sound.setAttribute("aria-pressed", String(this.sound));
      if (this.sound) beep();
    });
    const notify = $("notify-toggle");
    notify.setAttribute("aria-pressed", String(this.notify));
    notify.hidden = !("Notification" in window);
    notify.addEventListener("click", async () => {
      if (!this.notify && Notification.permission !== "granted") {
        const answer = await Notification.requestPermission();
        if (answer !== "granted") return toast("Notifications are blocked for this page in the browser.");
      }
      this.notify = !this.notify;
      store.set("notify", this.notify);
      notify.setAttribute("aria-pressed", String(this.notify));
    });
    const level = $("notify-level");
    level.value = this.level;
    level.addEventListener("change", () => {
      this.level = level.value;
      store.set("level", this.level);
    });
    $("mute-channel").addEventListener("click", () => this.toggleMute());
    this.foldChannelActions();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.timeline.onScroll();
      this.updateTitle();
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && ev.ctrlKey) {
        ev.preventDefault();
        $("search-input").focus();
      }
    });
  }

  // -- identity -----------------------------------------------------------------------------------
  me() {
    return this.whoami?.name || this.name || "you";
  }

  /** Ask the server who this browser is; an older server without /api/me keeps name-based ownership. */
  async loadMe() {
    try {
      const me = await api.me();
      const known = me && typeof me.person_id === "number" ? me : null;
      const changed = known?.person_id !== this.whoami?.person_id || known?.name !== this.whoami?.name;
      this.whoami = known;
      if (changed) {
        this.showName();
        this.timeline.refreshAll();
      }
    } catch {
      /* no /api/me here: fall back to the display name */
    }
  }

  knowsMe() {
    return this.whoami != null;
  }

  /** A message this person wrote: by person id when the server gives one, else by display name. */
  isOwn(msg) {
    if (!msg || msg.kind !== "human") return false;
    if (this.whoami && msg.person_id != null) return msg.person_id === this.whoami.person_id;
    if (this.whoami) return false;
    return msg.sender === this.me();
  }

  showName() {
    $("me-name").textContent = this.me();
    const face = $("me-avatar");
    face.textContent = this.me().charAt(0).toUpperCase();
    face.style.setProperty("--c", colorFor(this.me()));
  }

  async askName(first) {
    const result = await openDialog({
      title: first ? "Welcome to backchannel" : "Your display name",
      text: "This is the name your messages are sent under. Agents see it when you mention them.",
      fields: [{ name: "name", label: "Display name", value: this.me(), maxLength: 32 }],
      ok: "Save",
      submit: ({ name }) => this.setName(name),
    });
    if (result == null && first) this.name = "you"; // asked once; the name button changes it later
  }

  /** The server keeps the name when it knows who we are (GET/PUT /api/me); older servers: this browser. */
  async setName(name) {
    if (!HUMAN_NAME.test(name)) throw new Error("Use 1–32 letters, digits, spaces, '.', '_' or '-', starting with a letter.");
    if (this.agents.has(name.toLowerCase())) throw new Error(`${name} is an agent's name; pick another.`);
    if (this.whoami) this.whoami = await api.setMe(name);
    this.name = this.whoami?.name || name;
    store.set("name", this.name);
    this.showName();
    this.timeline.refreshAll();
  }

  /** A person changed their name: their messages show the new one (ours too, and the name bar). */
  onPersonRenamed(e) {
    if (this.whoami && e.person_id === this.whoami.person_id) {
      this.whoami = { ...this.whoami, name: e.new };
      this.showName();
    }
    this.pins.renamePerson(e.old, e.new); // first: the timeline re-renders the pin markers
    this.timeline.renamePerson(e.person_id, e.old, e.new);
  }

  // -- agents and mentions ----------------------------------------------------------------------
  agent(name) {
    return this.agents.get(name) || null;
  }

  agentList() {
    return [...this.agents.values()];
  }

  people() {
    const names = this.timeline.knownPeople();
    names.delete(this.me());
    return names;
  }

  mention(name) {
    const lower = name.toLowerCase();
    const agent = this.agents.get(lower);
    const isMe = lower === this.me().toLowerCase();
    if (!agent && !isMe && lower !== "all" && !this.timeline.knownPeople().has(name)) return null;
    const span = el("span", `mention${isMe ? " me" : ""}${agent ? " is-agent" : ""}`, `@${name}`);
    if (agent) {
      span.style.setProperty("--c", colorFor(name, agent));
      span.title = `${agent.label} · ${agent.state}`;
    }
    return span;
  }

  isMention(msg) {
    if (msg.kind === "system" || this.isOwn(msg)) return false;
    const me = this.me().toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(?<![\\w@./-])@(${me}|all)(?![\\w-])`, "i").test(msg.text);
  }

  // -- loading ------------------------------------------------------------------------------------
  async sync(fresh) {
    try {
      const me = this.loadMe();
      // The board catches up on every (re)connect; its unread counts need to know which
      // messages are this person's, so it starts once /api/me has answered.
      const jobs = me.then(() => this.jobs.refresh());
      this.pins.refresh(); // the open channel's pins catch up too
      this.schedules.refresh(); // and its schedules (some may have fired meanwhile)
      this.sessions.refresh(); // running sessions may have moved on while away
      this.rules.refresh(); // rules and room settings catch up on every (re)connect too
      this.settings.refresh();
      const [channels, agents] = await Promise.all([api.channels(), api.agents(), me]);
      // First visit to a server that does not name people itself: ask once.
      if (fresh && this.whoami == null && this.name == null && !this.asked) {
        this.asked = true;
        this.askName(true);
      }
      this.channels = new Map(channels.map((c) => [c.name, c]));
      this.agents = new Map(agents.map((a) => [a.name, a]));
      renderRoster(this);
      this.sessions.render(); // the bar's "(offline)" comes from the roster
      const wanted = this.channel || store.get("channel", "general");
      if (fresh || !this.channel || !this.channels.has(this.channel)) {
        await this.open(this.channels.has(wanted) ? wanted : "general", { keepSidebar: true });
        await this.countUnread();
      } else {
        renderChannels(this);
        this.updateBanner();
      }
      await jobs;
    } catch (err) {
      toast(`Could not load the room: ${err.message}`);
    }
  }

  async countUnread() {
    // allSettled: a channel deleted meanwhile just has no count.
    await Promise.allSettled(
      [...this.channels.keys()].map(async (name) => {
        if (name === this.channel) return;
        const page = await api.history(name, { after: this.lastRead[name] ?? 0, limit: 100 });
        const ids = this.unreadIds(name);
        for (const m of page.messages) if (!this.isOwn(m)) ids.add(m.id);
        if (page.has_more) ids.add(-1); // more than we counted: shown as 99+
      }),
    );
    renderChannels(this);
    this.updateTitle();
  }

  async open(name, { keepSidebar = false } = {}) {
    this.channel = name;
    store.set("channel", name);
    this.unread.delete(name);
    $("channel-title").replaceChildren(el("span", "hash", "#"), name);
    document.title = `#${name} · ${this.settings.title}`;
    const fixed = name === "general";
    $("rename-channel").hidden = fixed;
    $("delete-channel").hidden = fixed;
    this.showMute();
    this.composer.setChannel(name);
    this.pins.setChannel(name);
    this.schedules.setChannel(name);
    this.sessions.render();
    renderChannels(this);
    this.updateBanner();
    if (!keepSidebar) this.closeSidebar();
    try {
      await this.timeline.open(name, this.lastRead[name]);
    } catch (err) {
      toast(`Could not open #${name}: ${err.message}`);
    }
    this.updateTitle();
  }

  /** "Mark read": everything loaded in `channel` up to `id` counts as seen, whatever the scroll. */
  markRead(channel, id) {
    if ((this.lastRead[channel] ?? -1) < id) {
      this.lastRead[channel] = id;
      store.set("read", this.lastRead);
    }
    this.unread.delete(channel);
    this.updateTitle();
  }

  onSeen(id) {
    if (!this.channel || document.hidden) return;
    if ((this.lastRead[this.channel] ?? -1) < id) {
      this.lastRead[this.channel] = id;
      store.set("read", this.lastRead);
    }
  }

  onSent(msg) {
    if (msg.channel === this.channel) {
      this.timeline.add(msg);
      this.timeline.jumpToLatest();
    }
  }

  async jump(id, channel) {
    const target = channel || this.timeline.msgs.get(id)?.channel || (await api.message(id).catch(() => null))?.channel;
    if (!target) return toast("That message is no longer available.");
    if (target !== this.channel) await this.open(target);
    await this.timeline.jumpTo(id);
  }

  // -- live events ------------------------------------------------------------------------------
  onEvent(e) {
    switch (e.kind) {
      case "message":
        // A job thread's message (job_id set) belongs to the jobs panel, never to the timeline.
        if (e.message?.job_id != null) return this.jobs.onThreadMessage(e.message);
        return this.onMessage(e.message);
      case "message_edited":
      case "message_deleted":
        this.pins.onMessage(e.message);
        if (e.message?.job_id != null) return this.jobs.onThreadUpdate(e.message, e.kind);
        return this.timeline.update(e.message);
      case "job":
        return this.jobs.onEvent(e);
      case "pin":
        return this.pins.onEvent(e);
      case "schedule":
        return this.schedules.onEvent(e);
      case "session":
        return this.sessions.onEvent(e);
      case "session_template":
        return this.sessions.onTemplateEvent(e);
      case "channel_cleared":
        return onChannelCleared(this, e.channel);
      case "rule":
        return this.rules.onEvent(e);
      case "settings":
        this.agentsUI.onSettings(e.settings); // the role picker offers the saved roles
        return this.settings.apply(e.settings);
      case "channel_created":
        this.channels.set(e.channel.name, e.channel);
        return renderChannels(this);
      case "channel_renamed":
        return this.onChannelRenamed(e.old, e.channel);
      case "channel_updated":
        if (!this.channels.has(e.channel.name)) return;
        this.channels.set(e.channel.name, e.channel);
        if (e.channel.name === this.channel) this.updateBanner();
        return;
      case "channel_deleted":
        return this.onChannelDeleted(e.name);
      case "presence": {
        const before = this.agents.get(e.agent.name);
        this.agents.set(e.agent.name, { ...before, ...e.agent });
        if (before?.state !== e.agent.state) this.timeline.repaintDeliveriesFor(e.agent.name);
        if (before && before.color !== this.agents.get(e.agent.name).color) this.jobs.onAgentColor(e.agent.name);
        renderRoster(this);
        if (before?.state !== e.agent.state) this.sessions.render(); // "(offline)" on the bar
        return this.agentsUI.onPresence(before, this.agents.get(e.agent.name));
      }
      case "agent_forgotten":
        return this.forgetAgent(e.name);
      case "agent_renamed":
        return this.onAgentRenamed(e.old, e.agent || { name: e.new });
      case "person_renamed":
        return this.onPersonRenamed(e);
      case "delivery": {
        const agent = this.agents.get(e.agent);
        if (agent) {
          agent.delivery = e.state;
          renderRoster(this);
        }
        return this.timeline.onDelivery(e);
      }
      case "reset":
        return this.sync(true);
      default:
        return; // ping and kinds this page does not show
    }
  }

  onAgentRenamed(old, agent) {
    if (!agent?.name) return;
    const known = this.agents.get(old) || this.agents.get(agent.name);
    this.agents.delete(old);
    this.agents.set(agent.name, { ...known, ...agent });
    renderRoster(this);
    if (old !== agent.name) this.timeline.renameAgent(old, agent.name);
    else this.timeline.refreshAll();
  }

  onMessage(msg) {
    const channel = this.channels.get(msg.channel);
    if (channel) {
      // Mirrors the server's loop guard: a notice pauses routing; a person's message or /continue resumes it.
      const was = channel.paused;
      if (msg.kind === "system" && /^Loop guard:/.test(msg.text)) channel.paused = true;
      else if (msg.kind === "human" || (msg.kind === "system" && /resumed agent routing/.test(msg.text))) {
        channel.paused = false;
      }
      if (was !== channel.paused) {
        this.updateBanner();
        renderChannels(this);
      }
    }
    const mine = this.isOwn(msg);
    if (msg.channel === this.channel) {
      const isNew = this.timeline.add(msg);
      if (isNew && !mine && document.hidden) this.bump(msg.channel, msg.id);
    } else if (!mine && channel) {
      this.bump(msg.channel, msg.id);
    }
    if (!mine) this.alert(msg);
  }

  unreadIds(channel) {
    if (!this.unread.has(channel)) this.unread.set(channel, new Set());
    return this.unread.get(channel);
  }

  unreadCount(channel) {
    const ids = this.unread.get(channel);
    if (!ids) return 0;
    return ids.has(-1) ? Math.max(100, ids.size) : ids.size;
  }

  bump(channel, id) {
    this.unreadIds(channel).add(id);
    renderChannels(this);
    this.updateTitle();
  }

  updateTitle() {
    if (!document.hidden && this.channel) this.unread.delete(this.channel);
    let total = 0;
    for (const name of this.unread.keys()) total += this.unreadCount(name);
    document.title = `${total ? `(${total > 99 ? "99+" : total}) ` : ""}#${this.channel || "general"} · ${this.settings.title}`;
    if (!document.hidden) renderChannels(this);
  }

  /**
   * Sound and browser notification, by the person's choice: "all" (mentions, and anything you are
   * not looking at), "mentions" (only @you / @all), or "off"; a muted channel never alerts.
   */
  alert(msg) {
    if (msg.kind === "system" || this.level === "off" || this.muted.has(msg.channel)) return;
    const mentioned = this.isMention(msg);
    const unseen = document.hidden || msg.channel !== this.channel;
    if (!mentioned && (this.level === "mentions" || !unseen)) return;
    if (this.sound && this.settings.sounds) beep(); // the room setting silences every page
    if (this.notify && document.hidden && Notification.permission === "granted") {
      try {
        const where = msg.job_id != null ? `job #${msg.job_id}` : `#${msg.channel}`;
        const n = new Notification(`${msg.sender} in ${where}`, {
          body: snippet(msg.text, 140),
          tag: `bc-${where}`,
        });
        n.onclick = () => {
          window.focus();
          if (msg.job_id != null) this.jobs.openJob(msg.job_id);
          else this.jump(msg.id, msg.channel);
        };
      } catch {
        /* some browsers only allow notifications from a service worker: the sound still plays */
      }
    }
  }

  setConn(state) {
    const box = $("conn");
    box.dataset.state = state;
    box.querySelector(".conn-text").textContent = CONN_TEXT[state] || state;
  }

  toggleMute() {
    const name = this.channel;
    if (this.muted.has(name)) this.muted.delete(name);
    else this.muted.add(name);
    store.set("muted", [...this.muted]);
    this.showMute();
    renderChannels(this);
  }

  /** Phones fold the channel's actions behind "…" (app.css): it opens them; Escape, a pick or leaving closes. */
  foldChannelActions() {
    const more = $("channel-more");
    const box = $("channel-actions");
    const list = $("channel-action-list");
    const fold = (open, refocus = false) => {
      box.classList.toggle("open", open);
      more.setAttribute("aria-expanded", String(open));
      if (!open && refocus) more.focus();
    };
    more.addEventListener("click", () => {
      fold(!box.classList.contains("open"));
      if (box.classList.contains("open")) list.querySelector("button:not([hidden])")?.focus();
    });
    box.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape" || !box.classList.contains("open")) return;
      ev.stopPropagation();
      fold(false, true);
    });
    box.addEventListener("focusout", (ev) => box.contains(ev.relatedTarget) || fold(false));
    list.addEventListener("click", (ev) => {
      const picked = ev.target.closest("button");
      if (picked && box.classList.contains("open")) fold(false, picked.id === "mute-channel");
    });
  }

  showMute() {
    const muted = this.muted.has(this.channel);
    const btn = $("mute-channel");
    btn.setAttribute("aria-pressed", String(muted));
    const label = `${muted ? "Unmute" : "Mute"} #${this.channel}`;
    btn.setAttribute("aria-label", label);
    btn.title = muted ? `Unmute #${this.channel}: alert again` : `Mute #${this.channel}: no sound or notifications`;
    btn.replaceChildren(icon(muted ? "bell-off" : "bell"));
  }

  updateBanner() {
    const ch = this.channels.get(this.channel);
    $("paused-banner").hidden = !ch?.paused;
    $("timeline").classList.toggle("paused", !!ch?.paused);
    this.showSummary(ch);
  }

  /** The channel's summary under the header: one line, the whole text on click; who wrote it, when. */
  showSummary(ch) {
    const box = $("channel-summary");
    const toggle = $("summary-toggle");
    if (box.dataset.channel !== this.channel) {
      box.dataset.channel = this.channel || "";
      box.classList.remove("expanded");
      toggle.setAttribute("aria-expanded", "false");
    }
    box.hidden = !ch?.summary;
    if (!ch?.summary) return;
    $("summary-text").textContent = ch.summary;
    const meta = $("summary-meta");
    meta.textContent = [ch.summary_by, ch.summary_at ? fmtAgo(ch.summary_at) : ""].filter(Boolean).join(" · ");
    meta.title = ch.summary_at ? `Written ${fmtFull(ch.summary_at)}` : "";
  }

  toggleSummary() {
    const box = $("channel-summary");
    const open = !box.classList.contains("expanded");
    box.classList.toggle("expanded", open);
    $("summary-toggle").setAttribute("aria-expanded", String(open));
  }

  async requestSummary(arg) {
    const agent = (arg || "").trim().replace(/^@/, "");
    if (!agent) return toast("Name the agent: /summary @agent");
    try {
      const asked = await api.requestSummary(this.channel, agent);
      toast(`Asked @${asked.agent} for a summary of #${this.channel}.`);
    } catch (err) {
      toast(`Could not ask for a summary: ${err.message}`);
    }
  }

  // -- channels ---------------------------------------------------------------------------------
  async createChannel(initial = "") {
    const created = await openDialog({
      title: "Create a channel",
      fields: [{ name: "name", label: "Name", value: initial, placeholder: "e.g. frontend", maxLength: 32 }],
      ok: "Create",
      submit: ({ name }) => api.createChannel(name),
    });
    if (created) {
      this.channels.set(created.name, created);
      await this.open(created.name);
      this.composer.focus();
    }
  }

  async renameChannel() {
    const old = this.channel;
    const renamed = await openDialog({
      title: `Rename #${old}`,
      fields: [{ name: "name", label: "New name", value: old, maxLength: 32 }],
      ok: "Rename",
      submit: ({ name }) => api.renameChannel(old, name),
    });
    if (renamed) this.onChannelRenamed(old, renamed);
  }

  async deleteChannel() {
    const name = this.channel;
    await openDialog({
      title: `Delete #${name}?`,
      text: `This deletes #${name} and its messages for everyone. It cannot be undone.`,
      ok: "Delete channel",
      danger: true,
      submit: () => api.deleteChannel(name),
    });
  }

  onChannelRenamed(old, channel) {
    if (!this.channels.has(old) && this.channels.has(channel.name)) return;
    this.channels.delete(old);
    this.channels.set(channel.name, channel);
    if (old in this.lastRead) {
      this.lastRead[channel.name] = this.lastRead[old];
      delete this.lastRead[old];
      store.set("read", this.lastRead);
    }
    if (this.muted.delete(old)) {
      this.muted.add(channel.name);
      store.set("muted", [...this.muted]);
    }
    this.composer.renameChannel(old, channel.name);
    this.jobs.renameChannel(old, channel.name);
    this.pins.renameChannel(old, channel.name);
    this.schedules.renameChannel(old, channel.name);
    this.rules.renameChannel(old, channel.name);
    this.sessions.renameChannel(old, channel.name);
    if (this.unread.has(old)) this.unread.set(channel.name, this.unread.get(old));
    this.unread.delete(old);
    if (this.channel === old) {
      this.channel = channel.name;
      this.timeline.channel = channel.name;
      store.set("channel", channel.name);
      $("channel-title").replaceChildren(el("span", "hash", "#"), channel.name);
      this.composer.setChannel(channel.name);
      this.showMute();
      this.updateBanner();
      this.updateTitle();
    }
    renderChannels(this);
  }

  onChannelDeleted(name) {
    this.channels.delete(name);
    this.jobs.dropChannel(name);
    this.rules.dropChannel(name);
    this.composer.forget(name);
    this.unread.delete(name);
    delete this.lastRead[name];
    store.set("read", this.lastRead);
    if (this.channel === name) {
      toast(`#${name} was deleted.`);
      this.open("general");
    } else {
      renderChannels(this);
    }
  }

  async resume() {
    try {
      await api.resume(this.channel, this.me());
      const ch = this.channels.get(this.channel);
      if (ch) ch.paused = false;
      this.updateBanner();
      renderChannels(this);
    } catch (err) {
      toast(`Could not resume: ${err.message}`);
    }
  }

  renderRoster() {
    renderRoster(this);
  }

  /** A forgotten agent leaves the roster; its messages stay, without its live role and colour. */
  forgetAgent(name) {
    if (!this.agents.delete(name)) return;
    renderRoster(this);
    this.agentsUI.onForgotten(name);
  }

  async renameAgent(agent) {
    return openDialog({
      title: `Rename ${agent.label || agent.name}`,
      text: "The label is what people see; the handle is what you @mention.",
      fields: [
        { name: "label", label: "Label", value: agent.label || "", maxLength: LABEL_MAX },
        { name: "name", label: "Handle", value: agent.name, maxLength: 64 },
      ],
      ok: "Save",
      submit: async ({ label, name }) => {
        const patch = {};
        if (label && label !== agent.label) patch.label = label;
        if (name && name !== agent.name) patch.name = name.toLowerCase();
        if (!Object.keys(patch).length) return {};
        const updated = await api.updateAgent(agent.name, patch);
        this.onAgentRenamed(agent.name, updated);
        return updated;
      },
    });
  }

  async command(name, arg) {
    switch (name) {
      case "continue":
        return this.resume();
      case "summary":
        return this.requestSummary(arg);
      case "clear":
        return confirmClear(this);
      case "search":
        return arg ? this.search.run(arg) : $("search-input").focus();
      case "new":
        return this.createChannel(arg);
      case "name":
        if (!arg) return this.askName(false);
        try {
          await this.setName(arg);
          toast(`You now post as ${this.me()}.`);
        } catch (err) {
          toast(err.message);
        }
    }
  }

  // -- narrow screens -----------------------------------------------------------------------------
  toggleSidebar() {
    const open = !document.body.classList.contains("sidebar-open");
    document.body.classList.toggle("sidebar-open", open);
    $("menu-toggle").setAttribute("aria-expanded", String(open));
    $("scrim").hidden = !open;
    if (open) $("sidebar").querySelector("button")?.focus();
  }

  closeSidebar() {
    if (!document.body.classList.contains("sidebar-open")) return;
    document.body.classList.remove("sidebar-open");
    $("menu-toggle").setAttribute("aria-expanded", "false");
    $("scrim").hidden = true;
  }
}

let audio = null;
function beep() {
  try {
    audio ??= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.25);
  } catch {
    /* no audio output: the visual highlight is enough */
  }
}

const app = new App();
window.backchannel = app; // handy from the devtools console; nothing else relies on it
app.start();
