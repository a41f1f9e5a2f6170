// Jobs: the board (To do / Active / Closed), a thread per job, and the job cards of the timeline.
//
// The board is a side panel (a full-screen sheet on phones). Cards move by drag and drop or from
// the keyboard (Alt+arrows, or the card's menu); every change goes to the server and comes back to
// every open page as a `job` event. Order is kept locally as list positions: the server's order
// arrives with the full list (on load and on reconnect) and as `reordered` events.
import { ApiError, api, request } from "./api.js";
import { IMAGE_TYPES, MENTION_BEFORE_CARET, mentionItems, messageBox, takeFiles } from "./composer.js";
import { $, avatar, colorFor, el, fmtFull, fmtTime, openDialog, snippet, store, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";
import { OrderedGroups, altKeys, dropSpot, focusStep, groupSection, liveRegion, loadWithLate, panelMethods, wireDrag } from "./ordered.js";
import { fillQuote, renderAttachments, renderChoices } from "./timeline.js";

const STATUSES = ["todo", "active", "closed"];
const LABELS = { todo: "To do", active: "Active", closed: "Closed" };
const PAGE_MAX = 100; // newest messages shown when a thread opens (fewer if the server reads fewer)
const SUGGESTION = /^\s*\[suggestion\]\s*/i;
const ICONS = {
  briefcase: ["M4 8h16v11H4z", "M9 8V5h6v3", "M4 13h16"],
  grip: ["M9 6h.01", "M15 6h.01", "M9 12h.01", "M15 12h.01", "M9 18h.01", "M15 18h.01"],
  more: ["M6 12h.01", "M12 12h.01", "M18 12h.01"],
  back: ["M15 5l-7 7 7 7"],
};

const jobsApi = {
  list: () => request("GET", "/api/jobs"),
  create: (payload) => request("POST", "/api/jobs", { json: payload }),
  update: (id, patch) => request("PATCH", `/api/jobs/${id}`, { json: patch }),
  limits: () => request("GET", "/api/limits"),
  reorder: (status, ids) => request("POST", "/api/jobs/reorder", { json: { status, ordered_ids: ids } }),
  destroy: (id) => request("DELETE", `/api/jobs/${id}?permanent=true`),
  thread(id, { limit, before, after }) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set("before", String(before));
    if (after != null) q.set("after", String(after));
    return request("GET", `/api/jobs/${id}/messages?${q}`);
  },
  post: (id, payload) => request("POST", `/api/jobs/${id}/messages`, { json: payload }),
  removeMessage: (id, msgId) => request("DELETE", `/api/jobs/${id}/messages/${msgId}`),
  resolve: (id, msgId, resolution) =>
    request("POST", `/api/jobs/${id}/messages/${msgId}/resolve`, { json: { resolution } }),
  decide: (msgId, decision, note = "") =>
    request("POST", `/api/jobs/proposals/${msgId}`, { json: { decision, note } }),
  convert: (msgId, agent) => request("POST", `/api/messages/${msgId}/job`, { json: agent ? { agent } : {} }),
};


/** A stroke icon in the same style as icons.js, for the shapes only the jobs UI uses. */
function jobIcon(name, size = 16) {
  const svg = pathIcon(ICONS[name], size);
  if (name === "grip" || name === "more") svg.classList.add("dots");
  return svg;
}

function button(className, label, { text, iconNode, title } = {}) {
  const b = el("button", className);
  b.type = "button";
  if (iconNode) b.append(iconNode);
  if (text) b.append(text);
  if (label) b.setAttribute("aria-label", label);
  if (title || label) b.title = title || label;
  return b;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const errorText = (err) => (err instanceof ApiError && err.status === 409 ? err.message || "Already decided." : err.message);

export class Jobs {
  constructor(app) {
    this.app = app;
    this.jobs = new OrderedGroups(); // id -> job; `pos` is its place in its group (server order, then moves)
    this.loaded = false;
    const seen = store.get("jobsRead", null);
    this.firstVisit = seen == null; // this browser has never seen the board: nothing counts as unread
    this.seen = seen && typeof seen === "object" ? seen : {}; // job id -> newest message id read here
    this.unread = new Map(); // job id -> Set of ids of others' messages newer than that
    this.limits = null; // GET /api/limits, read once
    this.pageSize = PAGE_MAX;
    this.current = null; // the job whose thread is open
    this.thread = this.emptyThread(null);
    this.closedOpen = store.get("jobsClosedOpen", false);
    this.dragId = null;
    this.menu = null;
    this.cards = new Map(); // job id -> {sig, node}: cards reused across renders
    this.uploads = [];
    this.items = [];
    this.active = 0;
    this.suggestPrefix = "job-suggest";
    this.build();
    document.addEventListener("visibilitychange", () => !document.hidden && this.markSeen());
  }

  // -- DOM --------------------------------------------------------------------------------------
  build() {
    this.toggle = $("jobs-toggle");
    this.badge = $("jobs-badge");
    this.toggle.prepend(jobIcon("briefcase", 16));
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.openPanel()));

    const panel = el("aside", "jobs-panel");
    panel.id = "jobs-panel";
    panel.hidden = true;
    panel.setAttribute("aria-labelledby", "jobs-heading");
    this.panel = panel;

    // board
    const board = el("div", "jobs-board");
    this.board = board;
    const head = el("div", "jobs-head");
    const h2 = el("h2", null, "Jobs");
    h2.id = "jobs-heading";
    h2.tabIndex = -1;
    this.newBtn = button("btn small primary", null, { text: "New job", iconNode: icon("plus", 16) });
    this.newBtn.addEventListener("click", () => this.showCreate());
    const closeBtn = button("icon-btn", "Close jobs", { iconNode: icon("x") });
    closeBtn.addEventListener("click", () => this.close());
    head.append(h2, this.newBtn, closeBtn);
    this.createForm = this.buildCreate();
    this.groups = el("div", "job-groups");
    this.groupEls = {};
    for (const status of STATUSES) {
      const toggle = status === "closed" ? () => this.setClosedOpen(!this.closedOpen) : null;
      const group = groupSection("job", status, LABELS[status], toggle);
      group.section.append(group.head, group.list);
      this.groupEls[status] = group;
      this.groups.append(group.section);
    }
    wireDrag(this, this.groups, {
      card: ".job-card",
      name: "job",
      marks: ["dragging", "drop-before", "drop-end", "drop-into"],
      onStart: () => {
        this.closeMenu();
        this.groups.classList.add("dragging-job");
      },
      onEnd: () => this.groups.classList.remove("dragging-job"),
      where: (ev) => this.dropTarget(ev),
      show: (target) => this.showDrop(target),
      drop: (id, target) => this.move(id, target.status, target.index),
    });
    const hint = el("p", "jobs-hint muted small");
    hint.append(
      "Drag cards to reorder or move them. Keyboard: focus a card, ",
      ...altKeys("↑", "↓"),
      " reorder, ",
      ...altKeys("←", "→"),
      " change group.",
    );
    this.announcer = liveRegion();
    board.append(head, this.createForm, this.groups, hint, this.announcer);

    // one job's conversation
    this.view = this.buildView();
    panel.append(board, this.view);
    panel.addEventListener("keydown", (ev) => this.onPanelKey(ev));
    $("app").append(panel);
  }

  buildCreate() {
    const form = el("form", "job-create");
    form.hidden = true;
    form.setAttribute("aria-label", "New job");
    const title = el("input");
    title.name = "title";
    title.required = true;
    title.placeholder = "What needs doing?";
    const body = el("textarea");
    body.name = "body";
    body.rows = 3;
    body.placeholder = "Brief (optional, Markdown)";
    const assignee = el("select");
    assignee.name = "assignee";
    const field = (label, input, counted) => {
      const box = el("label", "field");
      const top = el("span", "field-top");
      top.append(el("span", null, label));
      if (counted) {
        // The limit is the server's (GET /api/limits); maxlength stops typing past it.
        const counter = el("span", "counter muted");
        counter.setAttribute("aria-hidden", "true"); // the field's name stays "Title"
        const count = () => (counter.textContent = input.maxLength > 0 ? `${input.value.length}/${input.maxLength}` : "");
        input.addEventListener("input", count);
        input.addEventListener("limits", count);
        top.append(counter);
      }
      box.append(top, input);
      return box;
    };
    const error = el("p", "error small");
    error.setAttribute("role", "alert");
    const row = el("div", "dialog-buttons");
    const cancel = button("btn small", null, { text: "Cancel" });
    const ok = el("button", "btn small primary", "Create job");
    ok.type = "submit";
    row.append(cancel, ok);
    form.append(field("Title", title, true), field("Brief", body, true), field("Assignee", assignee), error, row);
    cancel.addEventListener("click", () => this.hideCreate());
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        this.hideCreate();
      } else if (ev.key === "Enter" && ev.target === body && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const payload = { title: title.value.trim(), body: body.value.trim(), channel: this.app.channel || "general" };
      if (!payload.title) {
        error.textContent = "A job needs a title.";
        title.focus();
        return;
      }
      if (assignee.value) payload.assignee = assignee.value;
      ok.disabled = true;
      try {
        const job = await jobsApi.create(payload);
        this.upsert(job);
        title.value = "";
        body.value = "";
        for (const input of [title, body]) input.dispatchEvent(new Event("input"));
        this.hideCreate(false);
        this.focusCard(job.id);
        this.say(`Created job #${job.id}, ${job.title}, in ${LABELS[job.status]}.`);
      } catch (err) {
        error.textContent = err.message;
      } finally {
        ok.disabled = false;
      }
    });
    this.createFields = { title, body, assignee, error };
    return form;
  }

  buildView() {
    const view = el("section", "job-view");
    view.hidden = true;
    view.setAttribute("aria-labelledby", "job-view-title");
    const head = el("div", "job-view-head");
    const row = el("div", "job-view-row");
    const back = button("icon-btn", "Back to all jobs", { iconNode: jobIcon("back", 18) });
    back.addEventListener("click", () => this.showBoard());
    const h2 = el("h2", "job-view-title");
    h2.id = "job-view-title";
    this.titleBtn = button("job-title-btn", null);
    this.titleBtn.title = "Edit the title";
    this.titleBtn.addEventListener("click", () => this.editTitle());
    h2.append(this.titleBtn);
    const del = button("icon-btn danger", "Delete job permanently", { iconNode: icon("trash") });
    del.addEventListener("click", () => this.confirmDelete(this.current));
    const close = button("icon-btn", "Close jobs", { iconNode: icon("x") });
    close.addEventListener("click", () => this.close());
    row.append(back, h2, del, close);

    const controls = el("div", "job-view-controls");
    const seg = el("div", "job-status-seg");
    seg.setAttribute("role", "group");
    seg.setAttribute("aria-label", "Status");
    this.statusBtns = {};
    for (const status of STATUSES) {
      const b = button(`seg-btn status-${status}`, null, { text: LABELS[status] });
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", () => this.setStatus(this.current, status));
      this.statusBtns[status] = b;
      seg.append(b);
    }
    const assign = el("label", "job-assignee");
    assign.append(el("span", "muted small", "Assignee"));
    this.assigneeSelect = el("select");
    this.assigneeSelect.addEventListener("change", () => this.setAssignee(this.current, this.assigneeSelect.value));
    assign.append(this.assigneeSelect);
    controls.append(seg, assign);
    this.viewMeta = el("p", "job-view-meta muted small");
    head.append(row, controls, this.viewMeta);

    this.scroller = el("div", "job-scroll");
    this.scroller.tabIndex = -1;
    this.brief = el("div", "job-brief");
    this.olderBtn = button("btn small job-older", null, { text: "Load earlier messages" });
    this.olderBtn.hidden = true;
    this.olderBtn.addEventListener("click", () => this.loadOlder());
    this.threadList = el("ol", "messages job-thread");
    this.threadList.setAttribute("aria-label", "Job messages");
    this.threadEmpty = el("p", "job-thread-empty muted small", "No messages yet. Mention an agent to get it started.");
    this.scroller.append(this.brief, this.olderBtn, this.threadEmpty, this.threadList);
    this.scroller.addEventListener(
      "scroll",
      () => {
        if (this.atBottom()) this.markSeen();
        if (this.scroller.scrollTop < 300 && this.thread.hasOlder) this.loadOlder();
      },
      { passive: true },
    );

    // The job's loop guard stopped agent routing in this thread: say so, with the way out.
    this.pausedBanner = el("div", "banner job-paused");
    this.pausedBanner.setAttribute("role", "status");
    this.pausedBanner.hidden = true;
    const resume = button("btn small primary", null, { text: "Resume" });
    resume.addEventListener("click", () => this.resume(this.current));
    this.pausedBanner.append(el("span", null, "Agent routing is paused in this job by the loop guard."), resume);
    view.append(head, this.pausedBanner, this.scroller, this.buildComposer());
    return view;
  }

  buildComposer() {
    const form = el("form", "composer job-composer");
    form.autocomplete = "off";
    this.suggestBox = el("ul", "suggest");
    this.suggestBox.id = "job-suggest";
    this.suggestBox.setAttribute("role", "listbox");
    this.suggestBox.setAttribute("aria-label", "Suggestions");
    this.suggestBox.hidden = true;
    this.previews = el("ul", "attachment-previews");
    this.previews.setAttribute("aria-label", "Images to send");
    const row = el("div", "composer-row");
    const attach = button("icon-btn", "Attach image", { iconNode: icon("image") });
    const file = el("input", "sr-only");
    file.type = "file";
    file.tabIndex = -1;
    file.setAttribute("aria-hidden", "true");
    file.accept = [...IMAGE_TYPES].join(",");
    file.multiple = true;
    attach.addEventListener("click", () => file.click());
    file.addEventListener("change", () => {
      [...file.files].forEach((f) => this.attach(f));
      file.value = "";
    });
    const input = el("textarea");
    input.id = "job-input";
    input.rows = 1;
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", "job-suggest");
    input.setAttribute("aria-expanded", "false");
    const send = el("button", "btn primary");
    send.type = "submit";
    send.setAttribute("aria-label", "Send to job");
    send.append(icon("send"));
    row.append(attach, file, input, send);
    // Editing one of your thread messages: the box holds its text until saved or cancelled.
    this.editBar = el("div", "composer-context editing");
    this.editBar.hidden = true;
    const cancel = button("icon-btn small", "Cancel editing", { iconNode: icon("x", 14) });
    cancel.addEventListener("click", () => this.cancelEdit(true));
    this.editBar.append(el("span", "composer-context-text", "Editing your message"), cancel);
    form.append(this.editBar, this.previews, this.suggestBox, row);
    this.input = input;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    input.addEventListener("keydown", (ev) => this.onComposerKey(ev));
    input.addEventListener("input", () => {
      this.autosize();
      this.suggest();
    });
    input.addEventListener("blur", () => setTimeout(() => this.closeSuggest(), 150));
    input.addEventListener("paste", (ev) => takeFiles(ev, ev.clipboardData).forEach((f) => this.attach(f)));
    form.addEventListener("dragover", (ev) => {
      if ([...(ev.dataTransfer?.types || [])].includes("Files")) ev.preventDefault();
    });
    form.addEventListener("drop", (ev) => takeFiles(ev, ev.dataTransfer).forEach((f) => this.attach(f)));
    return form;
  }

  // -- loading and live events ------------------------------------------------------------------
  /** The server's limits (once): field lengths and how many thread messages one read returns. */
  async loadLimits() {
    if (this.limits) return;
    try {
      this.limits = await jobsApi.limits();
    } catch {
      return; // an older server: fields go unchecked here, the server still refuses what is too long
    }
    const { job_title_max: title, job_body_max: body, max_message_chars: chars, read_limit_max: reads } = this.limits;
    this.pageSize = Math.max(1, Math.min(PAGE_MAX, reads || PAGE_MAX));
    const { title: t, body: b } = this.createFields;
    if (title) t.maxLength = title;
    if (body) b.maxLength = body;
    if (chars) this.input.maxLength = chars;
    for (const input of [t, b]) input.dispatchEvent(new Event("limits"));
  }

  /** Load (or after a reconnect, reload) the whole board, and the open thread's new messages. */
  async refresh() {
    const loaded = await loadWithLate(this, () => Promise.all([jobsApi.list(), this.loadLimits()]), "jobs");
    if (!loaded) return;
    const {
      result: [list],
      late,
    } = loaded;
    this.jobs = OrderedGroups.fromList(list);
    this.cards.clear();
    if (this.firstVisit) {
      for (const job of this.jobs.values()) this.seen[job.id] = job.last_message_id ?? 0;
      this.firstVisit = false;
      this.saveSeen();
    }
    this.loaded = true;
    if (this.current != null && !this.jobs.has(this.current)) {
      this.showBoard();
      toast("That job was deleted.");
    }
    this.unread = new Map(); // counted again below, by id, from the server
    for (const e of late) this.onEvent(e, false);
    this.renderBoard();
    this.countUnread(); // in the background: which messages came while this page was away
    if (this.current != null) {
      this.renderHead();
      await this.loadThread(true);
    } else if (!this.restored) {
      this.restored = true;
      const saved = store.get("jobsPanel", null);
      if (saved?.open) {
        if (saved.job != null && this.jobs.has(saved.job)) this.openJob(saved.job, { focus: false });
        else this.openPanel({ focus: false });
      }
    }
    for (const node of document.querySelectorAll("[data-job-open]")) this.markGone(node, !this.jobs.has(Number(node.dataset.jobOpen)));
    for (const node of document.querySelectorAll("[data-job-title]")) {
      const job = this.jobs.get(Number(node.dataset.jobTitle));
      if (job) node.textContent = job.title;
    }
  }

  onEvent(e, live = true) {
    if (live) this.late?.push(e);
    if (e.action === "created" || e.action === "updated") {
      if (e.job) this.upsert(e.job);
    } else if (e.action === "deleted") {
      if (e.job) this.removeLocal(e.job.id);
    } else if (e.action === "reordered") {
      this.jobs.applyOrder(e.status, e.ordered_ids || []);
      this.renderBoard();
    }
  }

  /** A job from the server. Order stays ours unless its status changed (then it goes last). */
  upsert(job) {
    const known = this.jobs.get(job.id);
    // A thread message may have come live before this (older) copy of the job: keep the newer count.
    const fresh = { ...job, pos: this.jobs.posFor(job) };
    if (known && (known.last_message_id ?? 0) > (job.last_message_id ?? 0)) {
      fresh.last_message_id = known.last_message_id;
      fresh.message_count = known.message_count;
    }
    this.jobs.set(job.id, fresh);
    this.renderBoard();
    if (this.current === job.id) {
      this.renderHead();
      this.markSeen();
    }
    for (const node of document.querySelectorAll(`[data-job-title="${job.id}"]`)) node.textContent = job.title;
  }

  removeLocal(id) {
    if (!this.jobs.delete(id)) return;
    this.cards.delete(id);
    this.unread.delete(id);
    delete this.seen[id];
    this.saveSeen();
    if (this.current === id) {
      this.showBoard();
      toast(`Job #${id} was deleted.`);
    }
    this.renderBoard();
    for (const node of document.querySelectorAll(`[data-job-open="${id}"]`)) this.markGone(node, true);
  }

  /** A link or button to a job that no longer exists stays readable but does nothing. */
  markGone(node, gone) {
    if (node.tagName === "BUTTON") node.disabled = gone;
    else if (gone) node.setAttribute("aria-disabled", "true");
    else node.removeAttribute("aria-disabled");
    node.title = gone ? "This job was deleted" : "";
  }

  /**
   * A thread message (message.job_id set) from the live feed: never shown in the timeline. Posts
   * publish no job event, so the card's count moves here, once per id (by last_message_id).
   */
  onThreadMessage(msg) {
    const job = this.jobs.get(msg.job_id);
    if (job && msg.id > (job.last_message_id ?? 0)) {
      job.message_count = (job.message_count ?? 0) + 1;
      job.last_message_id = msg.id;
    }
    if (this.thread.id === msg.job_id) this.addThread([msg], { live: true });
    else if (this.counts(msg)) this.unreadSet(msg.job_id).add(msg.id);
    this.markSeen();
    this.renderOne(msg.job_id);
    if (!this.app.isOwn(msg) && this.app.isMention(msg)) this.app.alert(msg);
  }

  /** An agent's colour changed (a `presence` event): its cards and its open-thread messages redraw. */
  onAgentColor(name) {
    if ([...this.jobs.values()].some((j) => j.assignee === name)) this.renderBoard(); // cards key on the colour
    for (const msg of this.thread.msgs?.values?.() ?? []) if (msg.sender === name) this.onThreadUpdate(msg);
  }

  /** An edit or a delete in a thread; a delete also leaves the job's count (it counts live ones). */
  onThreadUpdate(msg, kind = "message_edited") {
    const job = this.jobs.get(msg.job_id);
    if (kind === "message_deleted" && job) {
      job.message_count = Math.max(0, (job.message_count ?? 0) - 1);
      this.unread.get(job.id)?.delete(msg.id);
      this.renderOne(job.id);
    }
    if (this.thread.id !== msg.job_id || !this.thread.msgs.has(msg.id)) return;
    this.thread.msgs.set(msg.id, msg);
    const old = this.threadList.querySelector(`:scope > li[data-id="${msg.id}"]`);
    if (old) {
      const fresh = this.renderThreadMsg(msg);
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (hadFocus) fresh.focus({ preventScroll: true });
    }
    if (kind === "message_deleted") this.renderOne(msg.job_id);
  }

  // -- unread: others' messages with an id above the newest this browser has read -----------------
  seenOf(id) {
    const seen = this.seen[id];
    return typeof seen === "number" ? seen : 0;
  }

  /** Does `msg` count as unread once it is newer than what was read? Own words and status lines never do. */
  counts(msg) {
    return !msg.deleted && msg.kind !== "system" && !this.app.isOwn(msg) && msg.id > this.seenOf(msg.job_id);
  }

  unreadSet(id) {
    let set = this.unread.get(id);
    if (!set) this.unread.set(id, (set = new Set()));
    return set;
  }

  unreadOf(job) {
    if (this.thread.id === job.id) {
      let n = 0;
      for (const msg of this.thread.msgs.values()) if (this.counts(msg)) n += 1;
      return n;
    }
    return this.unread.get(job.id)?.size ?? 0;
  }

  /** Jobs whose newest message is past what was read: fetch those messages to count them by id. */
  async countUnread() {
    const behind = [...this.jobs.values()].filter((j) => (j.last_message_id ?? 0) > this.seenOf(j.id) && this.thread.id !== j.id);
    const worker = async () => {
      for (let job = behind.shift(); job; job = behind.shift()) {
        try {
          const page = await jobsApi.thread(job.id, { limit: this.pageSize, after: this.seenOf(job.id) });
          const set = this.unreadSet(job.id);
          for (const msg of page) if (this.counts(msg)) set.add(msg.id);
          this.renderOne(job.id);
        } catch {
          /* the job went away meanwhile: its card goes with the event */
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }

  /** The open thread is read up to its end (shown, scrolled down, the page visible). */
  markSeen() {
    if (this.current == null || !this.isOpen() || document.hidden) return;
    const job = this.jobs.get(this.current);
    if (!job || !this.atBottom() || this.thread.id !== job.id) return;
    const newest = Math.max(this.thread.order.at(-1) ?? 0, this.seenOf(job.id));
    this.unread.delete(job.id);
    if (this.seenOf(job.id) !== newest) {
      this.seen[job.id] = newest;
      this.saveSeen();
    }
    this.renderOne(job.id);
  }

  /** A deleted channel takes its jobs along (the server sends no event per job). */
  dropChannel(name) {
    for (const job of [...this.jobs.values()]) if (job.channel === name) this.removeLocal(job.id);
  }

  renameChannel(old, name) {
    for (const job of this.jobs.values()) if (job.channel === old) job.channel = name;
    if (this.current != null) this.renderHead();
  }

  saveSeen() {
    store.set("jobsRead", this.seen);
  }

  updateBadge() {
    let total = 0;
    for (const job of this.jobs.values()) total += this.unreadOf(job);
    this.badge.hidden = total === 0;
    this.badge.textContent = total > 99 ? "99+" : String(total);
    this.toggle.setAttribute("aria-label", total ? `Jobs, ${total} unread` : "Jobs");
  }

  // -- the panel ----------------------------------------------------------------------------------
  openPanel({ focus = true } = {}) {
    this.panel.hidden = false;
    document.body.classList.add("jobs-open");
    this.toggle.setAttribute("aria-expanded", "true");
    if (this.current == null) {
      this.view.hidden = true;
      this.board.hidden = false;
    }
    this.remember();
    this.markSeen();
    if (!focus) return;
    if (this.current != null) this.input.focus();
    else (this.groups.querySelector(".job-open") || this.newBtn).focus();
  }

  close() {
    this.closeMenu();
    this.panel.hidden = true;
    document.body.classList.remove("jobs-open");
    this.toggle.setAttribute("aria-expanded", "false");
    this.remember();
    this.toggle.focus();
  }

  remember() {
    store.set("jobsPanel", { open: this.isOpen(), job: this.current });
  }

  /** Thread state for job `id`, set before its messages are fetched so live ones are kept. */
  emptyThread(id) {
    return { id, msgs: new Map(), order: [], hasOlder: false, loading: false };
  }

  /** Leave the open thread: what is unread in it stays unread on its card. */
  leaveThread() {
    const t = this.thread;
    if (t.id != null) for (const msg of t.msgs.values()) if (this.counts(msg)) this.unreadSet(t.id).add(msg.id);
    this.cancelEdit();
    this.thread = this.emptyThread(null);
    this.threadList.replaceChildren();
  }

  showBoard() {
    const was = this.current;
    this.current = null;
    this.leaveThread();
    this.view.hidden = true;
    this.board.hidden = false;
    this.panel.classList.remove("viewing");
    this.remember();
    if (was != null && this.isOpen()) this.focusCard(was);
  }

  /** Open job `id`'s conversation (the panel opens too). `prefill` goes into an empty box. */
  async openJob(id, { focus = true, prefill = "", show = null } = {}) {
    if (!this.jobs.has(id)) {
      if (!this.loaded) await this.refresh();
      if (!this.jobs.has(id)) return toast(`Job #${id} no longer exists.`);
    }
    this.closeMenu();
    this.hideCreate(false);
    const switching = this.current !== id;
    this.current = id;
    this.board.hidden = true;
    this.view.hidden = false;
    this.panel.classList.add("viewing");
    this.openPanel({ focus: false });
    this.renderHead();
    if (switching) {
      this.leaveThread();
      this.input.value = "";
      this.dropAllUploads();
      await this.loadThread(false);
      if (this.current !== id) return;
      const job = this.jobs.get(id);
      if (prefill) this.input.value = prefill;
      else if (!this.thread.order.length && job.assignee) this.input.value = `@${job.assignee} `;
      this.autosize();
    }
    if (show != null && (await this.showMessage(id, show))) return;
    if (focus) {
      this.input.focus();
      this.input.setSelectionRange(this.input.value.length, this.input.value.length);
    }
  }

  onPanelKey(ev) {
    if (ev.key !== "Escape" || ev.defaultPrevented) return;
    if (this.menu) {
      ev.preventDefault();
      return this.closeMenu(true);
    }
    const field = ev.target.closest?.("input, textarea, select");
    if (field && field !== this.input) return;
    if (field === this.input && (this.input.value.trim() || !this.suggestBox.hidden)) return;
    ev.preventDefault();
    if (this.current != null) this.showBoard();
    else this.close();
  }

  // -- board rendering ----------------------------------------------------------------------------
  renderBoard() {
    const active = document.activeElement;
    const focusCard = active?.closest?.(".job-card");
    const focusId = focusCard ? Number(focusCard.dataset.id) : null;
    const focusMore = active?.classList?.contains("job-more");
    for (const status of STATUSES) {
      const { list, count, label, section } = this.groupEls[status];
      const jobs = this.jobs.ordered(status);
      count.textContent = String(jobs.length);
      count.setAttribute("aria-label", plural(jobs.length, "job"));
      // A collapsed Closed group (where most jobs end up) builds its cards only when opened.
      const collapsed = status === "closed" && !this.closedOpen;
      let cards = collapsed ? [] : jobs.map((job) => this.cardFor(job));
      if (!jobs.length) cards = [this.emptyCard(status)];
      const now = list.children;
      if (now.length !== cards.length || cards.some((node, i) => now[i] !== node)) list.replaceChildren(...cards);
      if (status === "closed") {
        list.hidden = !this.closedOpen;
        label.setAttribute("aria-expanded", String(this.closedOpen));
        section.classList.toggle("collapsed", !this.closedOpen);
      }
    }
    if (focusId != null) {
      const card = this.cardOf(focusId);
      (focusMore ? card?.querySelector(".job-more") : card?.querySelector(".job-open"))?.focus({ preventScroll: false });
    }
    this.updateBadge();
  }

  /** A job's card, reused while nothing it shows has changed (a long board is not rebuilt). */
  cardFor(job) {
    const color = job.assignee ? colorFor(job.assignee, this.app.agent(job.assignee)) : "";
    const sig = [job.title, job.status, job.assignee, job.message_count, this.unreadOf(job), color].join("\u0001");
    const hit = this.cards.get(job.id);
    if (hit && hit.sig === sig) return hit.node;
    const node = this.renderCard(job);
    this.cards.set(job.id, { sig, node });
    return node;
  }

  emptyCard(status) {
    this.empties ??= {};
    this.empties[status] ??= el("li", "job-empty muted small", status === "closed" ? "Nothing closed yet." : "No jobs here. Drop a card here.");
    return this.empties[status];
  }

  /** Only job `id`'s card changed (its count or unread): a long board is not rebuilt per message. */
  renderOne(id) {
    const job = this.jobs.get(id);
    const old = this.cardOf(id);
    if (!job || !old || this.menu?.id === id) return this.renderBoard();
    const hadFocus = old.contains(document.activeElement);
    const focusMore = document.activeElement?.classList?.contains("job-more");
    const fresh = this.cardFor(job);
    if (fresh === old) return this.updateBadge();
    old.replaceWith(fresh);
    if (hadFocus) fresh.querySelector(focusMore ? ".job-more" : ".job-open")?.focus();
    this.updateBadge();
  }

  renderCard(job) {
    const li = el("li", `job-card status-${job.status}`);
    li.dataset.id = String(job.id);
    li.draggable = true;
    const unread = this.unreadOf(job);
    if (unread) li.classList.add("unread");
    const grip = el("span", "job-grip");
    grip.setAttribute("aria-hidden", "true");
    grip.append(jobIcon("grip", 14));
    const open = el("button", "job-open");
    open.type = "button";
    const title = el("span", "job-card-title", job.title);
    const meta = el("span", "job-card-meta");
    meta.append(el("span", "job-num", `#${job.id}`));
    if (job.assignee) {
      const who = el("span", "job-assignee-chip", `@${job.assignee}`);
      who.style.setProperty("--c", colorFor(job.assignee, this.app.agent(job.assignee)));
      meta.append(who);
    } else {
      meta.append(el("span", "job-unassigned", "unassigned"));
    }
    meta.append(el("span", "job-msgs", plural(job.message_count ?? 0, "message")));
    open.append(title, meta);
    if (unread) {
      const dot = el("span", "unread-dot", unread > 99 ? "99+" : String(unread));
      dot.setAttribute("aria-hidden", "true");
      open.append(dot, el("span", "sr-only", `, ${unread} unread`));
    }
    open.addEventListener("click", () => this.openJob(job.id));
    open.addEventListener("keydown", (ev) => this.onCardKey(ev, job.id));
    const more = button("icon-btn small job-more", `Move or delete job #${job.id}`, { iconNode: jobIcon("more", 18) });
    more.setAttribute("aria-haspopup", "menu");
    more.setAttribute("aria-expanded", "false");
    more.addEventListener("click", () => this.openMenu(job.id, more));
    li.append(grip, open, more);
    return li;
  }

  cardOf(id) {
    return this.groups.querySelector(`.job-card[data-id="${id}"]`);
  }

  focusCard(id) {
    const job = this.jobs.get(id);
    if (job?.status === "closed" && !this.closedOpen) this.setClosedOpen(true);
    this.cardOf(id)?.querySelector(".job-open")?.focus();
  }

  setClosedOpen(open) {
    this.closedOpen = open;
    store.set("jobsClosedOpen", open);
    this.renderBoard();
  }

  onCardKey(ev, id) {
    const job = this.jobs.get(id);
    if (!job) return;
    const keys = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"];
    if (!keys.includes(ev.key) || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    const sideways = ev.key === "ArrowLeft" || ev.key === "ArrowRight";
    if (ev.altKey) {
      if (sideways) {
        const s = STATUSES.indexOf(job.status) + (ev.key === "ArrowLeft" ? -1 : 1);
        if (s >= 0 && s < STATUSES.length) this.move(id, STATUSES[s], Infinity, { keyboard: true });
      } else {
        const to = this.jobs.stepTo(id, ev.key);
        if (to >= 0) this.move(id, job.status, to, { keyboard: true });
      }
      return;
    }
    if (sideways) return;
    focusStep([...this.groups.querySelectorAll(".job-list:not([hidden]) .job-open")], ev.currentTarget, ev.key);
  }

  /** Put job `id` at `index` of group `status` (optimistic; the server's events confirm it). */
  async move(id, status, index, { keyboard = false } = {}) {
    const job = this.jobs.get(id);
    if (!job) return;
    const from = job.status;
    const { ids, at, same } = this.jobs.placed(id, status, index);
    if (from === status && same) return;
    job.status = status;
    this.jobs.applyOrder(status, ids);
    if (keyboard && status === "closed" && !this.closedOpen) this.closedOpen = true;
    this.renderBoard();
    if (keyboard) this.focusCard(id);
    this.say(`${job.title}: ${LABELS[status]}, ${at + 1} of ${ids.length}.`);
    try {
      await jobsApi.reorder(status, ids); // one call moves it into the group at its place, too
    } catch (err) {
      toast(`Could not move job #${id}: ${err.message}`);
      this.refresh();
    }
  }

  async setStatus(id, status) {
    const job = this.jobs.get(id);
    if (!job || job.status === status) return;
    try {
      this.upsert(await jobsApi.update(id, { status }));
      this.say(`Job #${id} is now ${LABELS[status]}.`);
    } catch (err) {
      toast(`Could not change the status: ${err.message}`);
    }
  }

  async setAssignee(id, assignee) {
    try {
      this.upsert(await jobsApi.update(id, { assignee }));
    } catch (err) {
      toast(`Could not change the assignee: ${err.message}`);
      this.renderHead();
    }
  }

  async confirmDelete(id) {
    const job = this.jobs.get(id);
    if (!job) return;
    this.closeMenu();
    const done = await openDialog({
      title: `Delete job #${id} permanently?`,
      text: `“${snippet(job.title, 80)}” and its whole thread (${plural(job.message_count ?? 0, "message")}) are deleted for everyone. This cannot be undone. To keep it, close it instead.`,
      ok: "Delete permanently",
      danger: true,
      submit: () => jobsApi.destroy(id),
    });
    if (done) {
      this.removeLocal(id);
      this.say(`Job #${id} deleted.`);
      if (this.isOpen()) (this.groups.querySelector(".job-open") || this.newBtn).focus();
    }
  }

  // -- the card menu ------------------------------------------------------------------------------
  openMenu(id, anchor) {
    if (this.menu?.id === id) return this.closeMenu(true);
    this.closeMenu();
    const job = this.jobs.get(id);
    if (!job) return;
    const menu = el("div", "job-menu");
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", `Job #${id}`);
    const group = this.jobs.ordered(job.status).map((j) => j.id);
    const i = group.indexOf(id);
    const items = [["Open", () => this.openJob(id)]];
    if (i > 0) items.push(["Move up", () => this.move(id, job.status, i - 1, { keyboard: true })]);
    if (i < group.length - 1) items.push(["Move down", () => this.move(id, job.status, i + 1, { keyboard: true })]);
    for (const status of STATUSES) {
      if (status === job.status) continue;
      const label = status === "closed" ? "Close" : `Move to ${LABELS[status]}`;
      items.push([label, () => this.move(id, status, Infinity, { keyboard: true })]);
    }
    items.push(["Delete permanently…", () => this.confirmDelete(id), "danger"]);
    for (const [label, fn, extra] of items) {
      const item = el("button", `job-menu-item ${extra || ""}`, label);
      item.type = "button";
      item.setAttribute("role", "menuitem");
      item.tabIndex = -1;
      item.addEventListener("click", () => {
        this.closeMenu(false);
        fn();
      });
      menu.append(item);
    }
    menu.addEventListener("keydown", (ev) => {
      const all = [...menu.querySelectorAll("[role=menuitem]")];
      const at = all.indexOf(document.activeElement);
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        all[(at + (ev.key === "ArrowDown" ? 1 : -1) + all.length) % all.length].focus();
      } else if (ev.key === "Home" || ev.key === "End") {
        ev.preventDefault();
        all[ev.key === "Home" ? 0 : all.length - 1].focus();
      } else if (ev.key === "Tab") {
        this.closeMenu(false);
      }
    });
    anchor.setAttribute("aria-expanded", "true");
    anchor.closest(".job-card").append(menu);
    this.menu = { id, node: menu, anchor };
    menu.querySelector("[role=menuitem]").focus();
    this.outside = (ev) => {
      if (!menu.contains(ev.target) && ev.target !== anchor && !anchor.contains(ev.target)) this.closeMenu(false);
    };
    document.addEventListener("pointerdown", this.outside, true);
  }

  closeMenu(refocus = false) {
    if (!this.menu) return;
    const { node, anchor, id } = this.menu;
    this.menu = null;
    document.removeEventListener("pointerdown", this.outside, true);
    node.remove();
    anchor.setAttribute("aria-expanded", "false");
    if (refocus) (anchor.isConnected ? anchor : this.cardOf(id)?.querySelector(".job-more"))?.focus();
  }

  // -- drag and drop (wired by wireDrag in build) ----------------------------------------------------
  dropTarget(ev) {
    const section = ev.target.closest?.(".job-group");
    if (!section) return null;
    const status = section.dataset.status;
    const { list } = this.groupEls[status];
    if (list.hidden || ev.target.closest(".job-group-head")) return { status, index: Infinity, section };
    return { ...dropSpot(list, ".job-card", ev.clientY), status, section };
  }

  showDrop(target) {
    for (const n of this.groups.querySelectorAll(".drop-before, .drop-end, .drop-into")) {
      n.classList.remove("drop-before", "drop-end", "drop-into");
    }
    target.section.classList.add("drop-into");
    if (target.before) target.before.classList.add("drop-before");
    else if (target.list) target.list.classList.add("drop-end");
  }

  // -- create -------------------------------------------------------------------------------------
  showCreate() {
    this.fillAgents(this.createFields.assignee, "");
    this.openCreate(this.createFields.title);
  }

  fillAgents(select, value) {
    const options = [["", "Unassigned"]];
    for (const a of this.app.agentList().sort((x, y) => x.name.localeCompare(y.name))) {
      options.push([a.name, a.label && a.label.toLowerCase() !== a.name ? `@${a.name} (${a.label})` : `@${a.name}`]);
    }
    if (value && !options.some(([v]) => v === value)) options.push([value, `@${value}`]);
    select.replaceChildren(
      ...options.map(([v, label]) => {
        const o = el("option", null, label);
        o.value = v;
        return o;
      }),
    );
    select.value = value;
  }

  // -- one job ------------------------------------------------------------------------------------
  renderHead() {
    const job = this.jobs.get(this.current);
    if (!job) return;
    if (!this.titleEditing) {
      this.titleBtn.replaceChildren(el("span", "job-view-num", `#${job.id}`), el("span", "job-view-name", job.title));
      this.titleBtn.setAttribute("aria-label", `Job #${job.id}: ${job.title}. Edit the title`);
    }
    for (const status of STATUSES) this.statusBtns[status].setAttribute("aria-pressed", String(job.status === status));
    this.view.dataset.status = job.status;
    this.fillAgents(this.assigneeSelect, job.assignee || "");
    this.viewMeta.replaceChildren();
    this.viewMeta.append(`#${job.channel} · created by ${job.created_by || "someone"}`);
    if (job.anchor_msg_id) {
      const from = button("link-btn", null, { text: `from message #${job.anchor_msg_id}` });
      from.addEventListener("click", () => this.goToMessage(job.anchor_msg_id));
      this.viewMeta.append(" · ", from);
    }
    this.pausedBanner.hidden = !job.paused;
    this.brief.replaceChildren();
    const h = el("h3", "job-brief-head", "Brief");
    const body = el("div", "md");
    if (job.body) body.append(renderMarkdown(job.body, { mention: (n) => this.app.mention(n) }));
    else body.append(el("p", "muted", "No brief."));
    this.brief.append(h, body);
    this.input.placeholder = `Message job #${job.id}`;
    this.input.setAttribute("aria-label", `Message job #${job.id}`);
  }

  editTitle() {
    const job = this.jobs.get(this.current);
    if (!job || this.titleEditing) return;
    this.titleEditing = true;
    const input = el("input", "job-title-input");
    input.value = job.title;
    if (this.limits) input.maxLength = this.limits.job_title_max;
    input.setAttribute("aria-label", "Job title");
    const h2 = this.titleBtn.parentElement;
    this.titleBtn.hidden = true;
    h2.append(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (save && title && title !== job.title) {
        try {
          this.upsert(await jobsApi.update(job.id, { title }));
        } catch (err) {
          toast(`Could not rename: ${err.message}`);
        }
      }
      this.titleEditing = false;
      input.remove();
      this.titleBtn.hidden = false;
      this.renderHead();
      if (!save || document.activeElement === document.body) this.titleBtn.focus();
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        finish(true).then(() => this.titleBtn.focus());
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  /**
   * Fetch the newest page of the open thread and MERGE it by id: live messages that arrive while
   * the request is out are kept (the thread state is set first). After a reconnect, a page that
   * does not reach what is shown means a gap: what is older than the page is dropped and paged in again.
   */
  async loadThread(keepPlace) {
    const id = this.current;
    if (id == null) return;
    if (this.thread.id !== id) this.thread = this.emptyThread(id);
    const t = this.thread;
    const stick = !keepPlace || this.atBottom();
    let list;
    try {
      list = await jobsApi.thread(id, { limit: this.pageSize });
    } catch (err) {
      toast(`Could not load job #${id}: ${err.message}`);
      return;
    }
    if (this.thread !== t) return;
    const oldest = list.reduce((m, msg) => Math.min(m, msg.id), Infinity);
    if (list.length && t.order.length && (t.order.at(-1) ?? 0) < oldest) {
      for (const old of t.order.filter((x) => x < oldest)) {
        t.msgs.delete(old);
        this.threadList.querySelector(`:scope > li[data-id="${old}"]`)?.remove();
      }
      t.order = t.order.filter((x) => x >= oldest);
    }
    this.addThread(list);
    t.hasOlder = this.moreBefore(list, id);
    this.olderBtn.hidden = !t.hasOlder;
    if (stick) this.toBottom();
    this.markSeen();
  }

  /**
   * Are there older messages than this page? A short page can come from the server's own cap, so
   * the job's count decides too; an empty page always ends it.
   */
  moreBefore(page, id) {
    if (!page.length) return false;
    if (page.length >= this.pageSize) return true;
    let live = 0;
    for (const msg of this.thread.msgs.values()) if (!msg.deleted) live += 1;
    return live < (this.jobs.get(id)?.message_count ?? 0);
  }

  async loadOlder() {
    const t = this.thread;
    if (t.loading || !t.hasOlder || !t.order.length) return;
    t.loading = true;
    try {
      const list = await jobsApi.thread(t.id, { limit: this.pageSize, before: t.order[0] });
      if (this.thread !== t) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.addThread(list);
      t.hasOlder = this.moreBefore(list, t.id);
      this.olderBtn.hidden = !t.hasOlder;
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom; // the reader's place stays put
    } catch (err) {
      toast(`Could not load earlier messages: ${err.message}`);
    } finally {
      t.loading = false;
    }
  }

  /** Scroll job `id`'s open thread to message `msgId` (paging back to it) and flash it. */
  async showMessage(id, msgId) {
    while (this.current === id && !this.thread.msgs.has(msgId) && this.thread.hasOlder) {
      const before = this.thread.order.length;
      await this.loadOlder();
      if (this.thread.order.length === before) break;
    }
    const target = this.threadList.querySelector(`:scope > li[data-id="${msgId}"]`);
    if (!target) return false;
    target.scrollIntoView({ block: "center" });
    target.classList.remove("flash");
    void target.offsetWidth;
    target.classList.add("flash");
    target.focus({ preventScroll: true });
    return true;
  }

  /** A message anywhere: a thread message opens its job there, a channel message jumps the timeline. */
  async goToMessage(msgId) {
    const known = this.thread.msgs.get(msgId);
    let msg = known;
    if (!msg) {
      try {
        msg = await api.message(msgId);
      } catch {
        return toast("That message is no longer available.");
      }
    }
    if (msg.job_id != null) {
      if (this.current === msg.job_id) return this.showMessage(msg.job_id, msgId);
      return this.openJob(msg.job_id, { show: msgId });
    }
    if (window.matchMedia("(max-width: 760px)").matches) this.close();
    this.app.jump(msgId, msg.channel);
  }

  /** Resume agent routing in a job the loop guard paused: `/continue` posted in its thread. */
  async resume(id) {
    if (id == null) return;
    try {
      const sent = await jobsApi.post(id, { text: "/continue" });
      if (sent?.id != null && this.current === id) this.onThreadMessage({ ...sent, job_id: id });
      const job = this.jobs.get(id);
      if (job) job.paused = false;
      if (this.current === id) this.renderHead();
    } catch (err) {
      toast(`Could not resume: ${err.message}`);
    }
  }

  addThread(batch, { live = false } = {}) {
    const t = this.thread;
    const stick = this.atBottom();
    for (const msg of batch.slice().sort((a, b) => a.id - b.id)) {
      if (t.msgs.has(msg.id)) {
        this.onThreadUpdate(msg);
        continue;
      }
      t.msgs.set(msg.id, msg);
      let i = t.order.length;
      while (i > 0 && t.order[i - 1] > msg.id) i -= 1;
      const next = i < t.order.length ? this.threadList.querySelector(`:scope > li[data-id="${t.order[i]}"]`) : null;
      t.order.splice(i, 0, msg.id);
      this.threadList.insertBefore(this.renderThreadMsg(msg), next);
    }
    this.olderBtn.hidden = !t.hasOlder;
    this.threadEmpty.hidden = t.order.length > 0;
    if (live && stick) this.toBottom();
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  renderThreadMsg(msg) {
    const li = el("li", `msg ${msg.kind}`);
    li.dataset.id = String(msg.id);
    li.tabIndex = -1;
    const time = el("time", "time", fmtTime(msg.created_at));
    time.dateTime = new Date(msg.created_at * 1000).toISOString();
    time.title = fmtFull(msg.created_at);
    if (msg.kind === "system") {
      li.classList.add("system");
      const line = el("div", "system-line");
      const text = el("span", "text");
      text.append(renderMarkdown(msg.text, { mention: (n) => this.app.mention(n) }));
      line.append(text, time);
      li.append(line);
      return li;
    }
    const agent = msg.kind === "agent" ? this.app.agent(msg.sender) : null;
    li.style.setProperty("--c", colorFor(msg.sender, agent));
    const own = this.app.isOwn(msg);
    if (own) li.classList.add("mine");
    if (msg.deleted) li.classList.add("deleted");
    else if (this.app.isMention(msg)) li.classList.add("mentions-me");
    li.append(avatar(msg.sender, agent));
    const body = el("div", "msg-body");
    const meta = el("div", "meta");
    meta.append(el("span", "sender", msg.sender));
    if (msg.kind === "agent") meta.append(el("span", "tag", "agent"));
    const suggestion = msg.type === "suggestion";
    if (suggestion) meta.append(el("span", "tag type-suggestion", "Suggestion"));
    meta.append(time);
    if (msg.edited_at && !msg.deleted) meta.append(el("span", "edited", "(edited)"));
    this.app.pins.mark(li, meta, msg); // the "Pinned" / "Done" marker, as in the timeline
    body.append(meta);
    const ref = msg.reply_to != null ? this.thread.msgs.get(msg.reply_to) : null;
    if (ref) {
      // A reply inside the thread (an answer to a decision card): quote it, click to see it.
      const q = button("quote", null);
      fillQuote(q, ref);
      q.addEventListener("click", () => this.showMessage(msg.job_id, ref.id));
      body.append(q);
    }
    if (msg.deleted) {
      body.append(el("p", "deleted-text", "This message was deleted."));
    } else {
      const text = el("div", "text md");
      text.append(renderMarkdown(suggestion ? msg.text.replace(SUGGESTION, "") : msg.text, { mention: (n) => this.app.mention(n) }));
      if (suggestion) {
        const card = el("div", "suggestion-card");
        card.append(text, this.resolution(msg));
        body.append(card);
      } else {
        body.append(text);
      }
      const choices = Array.isArray(msg.metadata?.choices) ? msg.metadata.choices : [];
      if (choices.length) {
        body.append(
          renderChoices(msg, choices, (card) => this.onThreadUpdate({ ...card, job_id: msg.job_id })),
        );
      }
      const images = renderAttachments(msg);
      if (images) body.append(images);
    }
    li.append(body);
    if (!msg.deleted) {
      const bar = el("div", "actions");
      bar.setAttribute("role", "toolbar");
      bar.setAttribute("aria-label", `Actions for message from ${msg.sender}`);
      if (own) {
        const edit = button("icon-btn small", "Edit", { iconNode: icon("edit", 16) });
        edit.dataset.action = "edit";
        edit.addEventListener("click", () => this.startEdit(msg));
        bar.append(edit);
      }
      this.addActions(bar, msg);
      // Pin / Mark done / Unpin (js/pins.js): it knows the open channel's pins, so only there.
      if (msg.channel === this.app.channel) this.app.pins.addActions(bar, msg);
      if (own) {
        const del = button("icon-btn small danger", "Delete", { iconNode: icon("trash", 16) });
        del.addEventListener("click", () => this.deleteMessage(msg));
        bar.append(del);
      }
      if (bar.children.length) li.append(bar);
    }
    return li;
  }

  resolution(msg) {
    const state = msg.metadata?.resolution;
    const box = el("div", "suggestion-actions");
    if (state) {
      const by = msg.metadata?.resolved_by ? ` by ${msg.metadata.resolved_by}` : "";
      box.append(el("span", `outcome ${state}`, `${state === "accepted" ? "Accepted" : "Dismissed"}${by}`));
      return box;
    }
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", `Suggestion from ${msg.sender}`);
    for (const [label, resolution, cls] of [["Accept", "accepted", "primary"], ["Dismiss", "dismissed", ""]]) {
      const b = button(`btn small ${cls}`, null, { text: label });
      b.addEventListener("click", async () => {
        for (const x of box.querySelectorAll("button")) x.disabled = true;
        try {
          this.onThreadUpdate(await jobsApi.resolve(msg.job_id, msg.id, resolution));
        } catch (err) {
          toast(`Could not resolve: ${errorText(err)}`);
          for (const x of box.querySelectorAll("button")) x.disabled = false;
        }
      });
      box.append(b);
    }
    return box;
  }

  async deleteMessage(msg) {
    await openDialog({
      title: "Delete message?",
      text: `“${snippet(msg.text, 120) || "(image)"}” will be removed from job #${msg.job_id} for everyone.`,
      ok: "Delete",
      danger: true,
      submit: async () => {
        const gone = await jobsApi.removeMessage(msg.job_id, msg.id);
        if (gone && typeof gone === "object" && gone.id === msg.id) this.onThreadUpdate(gone);
        return gone || {};
      },
    });
  }

  // -- the thread's message box -----------------------------------------------------------------------
  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  onComposerKey(ev) {
    if (ev.isComposing) return;
    if (this.suggestOpen()) {
      if (this.moveSuggest(ev)) return;
      if (ev.key === "Enter" || ev.key === "Tab") {
        ev.preventDefault();
        this.choose(this.items[this.active]);
        return;
      }
      if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        this.closeSuggest();
        return;
      }
    }
    if (ev.key === "Escape" && this.editing) {
      ev.preventDefault();
      ev.stopPropagation();
      this.cancelEdit(true);
      return;
    }
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      this.send();
    }
  }

  suggest() {
    const caret = this.input.selectionStart;
    const mention = MENTION_BEFORE_CARET.exec(this.input.value.slice(0, caret));
    if (!mention) return this.closeSuggest();
    this.mentionStart = caret - mention[1].length - 1;
    this.items = mentionItems(this.app, mention[1].toLowerCase());
    this.showSuggest();
  }

  choose(item) {
    this.insertMention(item);
    this.closeSuggest();
    this.autosize();
    this.input.focus();
  }

  /** Edit one of your thread messages in the box (as the timeline's composer does). */
  startEdit(msg) {
    this.editing = msg;
    this.editBar.hidden = false;
    this.input.value = msg.text;
    this.autosize();
    this.input.focus();
    this.input.setSelectionRange(msg.text.length, msg.text.length);
  }

  cancelEdit(refocus = false) {
    if (!this.editing) return;
    this.editing = null;
    this.editBar.hidden = true;
    this.input.value = "";
    this.autosize();
    if (refocus) this.input.focus();
  }

  dropAllUploads() {
    for (const u of [...this.uploads]) this.dropUpload(u);
  }

  async send() {
    const id = this.current;
    if (id == null) return;
    const text = this.input.value;
    if (this.editing) {
      if (!text.trim()) return;
      try {
        this.onThreadUpdate(await api.edit(this.editing.id, text));
        this.cancelEdit(true);
      } catch (err) {
        toast(`Could not edit: ${err.message}`);
      }
      return;
    }
    const sending = this.uploads;
    await Promise.all(sending.map((u) => u.done));
    if (this.current !== id) return;
    const attachments = sending.filter((u) => u.result).map((u) => u.result);
    if (!text.trim() && !attachments.length) return;
    this.input.value = "";
    this.autosize();
    this.closeSuggest();
    try {
      const msg = await jobsApi.post(id, { text, attachments });
      for (const u of sending) this.dropUpload(u);
      if (this.current === id && msg && msg.id != null) {
        if (!this.thread.msgs.has(msg.id)) this.onThreadMessage({ ...msg, job_id: msg.job_id ?? id });
        this.toBottom();
        this.markSeen();
      }
    } catch (err) {
      if (this.current === id && !this.input.value) this.input.value = text;
      this.autosize();
      toast(`Not sent: ${err.message}`);
    }
  }

  // -- cards in the channel timeline --------------------------------------------------------------
  /** The body of a `job_proposal` message: title, brief, and the decision (or its outcome). */
  renderProposal(msg) {
    const meta = msg.metadata || {};
    const status = meta.status === "accepted" || meta.status === "dismissed" ? meta.status : "proposed";
    const card = el("div", `proposal-card ${status}`);
    const title = meta.title || String(msg.text || "").replace(/^Job proposal:\s*/i, "").split("\n")[0];
    const head = el("div", "proposal-head");
    head.append(jobIcon("briefcase", 16), el("strong", "proposal-title", title));
    card.append(head);
    const bodyText = typeof meta.body === "string" ? meta.body : String(msg.text || "").split("\n").slice(1).join("\n").trim();
    if (bodyText) {
      const body = el("div", "md proposal-body");
      body.append(renderMarkdown(bodyText, { mention: (n) => this.app.mention(n) }));
      card.append(body);
    }
    const foot = el("div", "proposal-foot");
    if (status === "accepted") {
      const by = meta.decided_by ? ` by ${meta.decided_by}` : "";
      foot.append(icon("check", 16), el("span", "outcome accepted", `Accepted${by} as job #${meta.job_id ?? "?"}`));
      if (meta.job_id != null) foot.append(this.openButton(meta.job_id, `Open job #${meta.job_id}`));
    } else if (status === "dismissed") {
      const by = meta.decided_by ? ` by ${meta.decided_by}` : "";
      foot.append(el("span", "outcome dismissed", `Dismissed${by}`));
    } else {
      foot.setAttribute("role", "group");
      foot.setAttribute("aria-label", `Job proposal: ${title}`);
      const accept = button("btn small primary", null, { text: "Accept" });
      const changes = button("btn small", null, { text: "Request changes" });
      const dismiss = button("btn small", null, { text: "Dismiss" });
      const all = [accept, changes, dismiss];
      const busy = (on) => all.forEach((b) => (b.disabled = on));
      accept.addEventListener("click", async () => {
        busy(true);
        const proposer = msg.kind === "agent" ? msg.sender : "";
        const payload = { title, body: bodyText, channel: msg.channel, anchor_msg_id: msg.id };
        if (proposer) payload.assignee = proposer;
        try {
          const job = await jobsApi.create(payload);
          this.upsert(job);
          await this.openJob(job.id, { prefill: proposer ? `@${proposer} ` : "" });
        } catch (err) {
          busy(false);
          toast(`Could not accept: ${errorText(err)}`);
        }
      });
      changes.addEventListener("click", () => this.requestChanges(msg, title));
      dismiss.addEventListener("click", async () => {
        busy(true);
        try {
          this.app.timeline.update(await jobsApi.decide(msg.id, "dismiss"));
        } catch (err) {
          busy(false);
          toast(`Could not dismiss: ${errorText(err)}`);
        }
      });
      foot.append(...all);
      if (meta.changes_requested_by) {
        const note = typeof meta.changes_note === "string" && meta.changes_note ? `: “${snippet(meta.changes_note, 140)}”` : "";
        foot.append(el("span", "outcome changes", `Changes requested by ${meta.changes_requested_by}${note}`));
      }
    }
    card.append(foot);
    return card;
  }

  openButton(id, text) {
    const b = button("btn small job-link", null, { text });
    b.dataset.jobOpen = String(id);
    if (this.loaded && !this.jobs.has(id)) this.markGone(b, true);
    b.addEventListener("click", () => this.openJob(id));
    return b;
  }

  async requestChanges(msg, title) {
    const note = el("textarea", "dialog-textarea");
    if (this.limits) note.maxLength = this.limits.job_body_max;
    note.rows = 4;
    note.required = true;
    note.placeholder = "What should change?";
    note.name = "note";
    const values = await openDialog({
      title: "Request changes",
      text: `${msg.sender} gets your note and can propose “${snippet(title, 60)}” again.`,
      fields: [{ label: "Note", input: note }],
      ok: "Send note",
      submit: async () => {
        if (!note.value.trim()) throw new Error("Write what should change.");
        return jobsApi.decide(msg.id, "changes", note.value.trim());
      },
    });
    if (values) {
      if (values.id === msg.id) this.app.timeline.update(values);
      toast(`Asked ${msg.sender} for changes.`);
    }
  }

  /** A `job_created` line in the timeline: who started which job, and a button that opens it. */
  renderCreated(msg, li) {
    li.classList.add("system", "job-event");
    const id = msg.metadata?.job_id;
    const line = el("div", "system-line job-created");
    line.append(jobIcon("briefcase", 15));
    const known = this.jobs.get(id);
    const title = known?.title || String(msg.text || "").replace(/^Job #\d+ created:\s*/, "");
    const text = el("span", "text");
    text.append(`${msg.sender} started `);
    if (id != null) {
      // A link, not a button: a long title wraps inside the sentence instead of jumping a line.
      const a = el("a", "job-link", `job #${id}: `);
      a.href = `#job-${id}`;
      a.dataset.jobOpen = String(id);
      const t = el("span", null, title);
      t.dataset.jobTitle = String(id);
      a.append(t);
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        if (a.getAttribute("aria-disabled") !== "true") this.openJob(id);
      });
      text.append(a);
    } else {
      text.append(title);
    }
    const time = el("time", "time", fmtTime(msg.created_at));
    time.title = fmtFull(msg.created_at);
    line.append(text, time);
    li.append(line);
    return li;
  }

  /** "Convert to job" in a message's actions: asks an agent to propose a job from it. */
  addActions(bar, msg) {
    if (msg.deleted || msg.kind === "system" || ["job_proposal", "job_created"].includes(msg.type)) return;
    const b = button("icon-btn small", "Convert to job", { iconNode: jobIcon("briefcase", 16) });
    b.dataset.action = "job";
    b.addEventListener("click", () => this.convert(msg));
    bar.append(b);
  }

  async convert(msg) {
    const agents = this.app.agentList().sort((a, b) => a.name.localeCompare(b.name));
    if (!agents.length) return toast("No agent to ask: start one with backchannel run.");
    const select = el("select");
    for (const a of agents) {
      const o = el("option", null, `@${a.name}${a.state === "offline" ? " (offline)" : ""}`);
      o.value = a.name;
      select.append(o);
    }
    const online = agents.find((a) => a.state !== "offline");
    select.value = msg.kind === "agent" && this.app.agent(msg.sender) ? msg.sender : (online || agents[0]).name;
    const preview = el("blockquote", "convert-preview", snippet(msg.text, 200) || "(image)");
    select.name = "agent";
    const result = await openDialog({
      title: "Convert to job",
      text: "The agent reads this message and proposes a job; you accept it from the card it posts.",
      fields: [{ node: preview }, { label: "Ask", input: select }],
      ok: "Ask agent",
      submit: () => jobsApi.convert(msg.id, select.value),
    });
    if (result) toast(`Asked @${result.agent || select.value} to propose a job from this message.`);
  }
}
Object.assign(Jobs.prototype, messageBox, panelMethods);
