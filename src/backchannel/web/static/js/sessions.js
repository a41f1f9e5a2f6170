// Sessions: the launcher (templates, goal, cast per role, "Design a session"), the session bar
// under the channel header (phase, whose turn, End with an inline confirm), the timeline banners
// (session_start / session_phase / session_end), the "Session output" marker, and the
// session_draft cards (Run / Save as template / Request changes / Dismiss).
//
// The server is the truth: GET /api/sessions?state=active and ?state=paused on every (re)connect,
// then `session` events on every page. Events that arrive while the lists load are applied again
// after them (ordered.js loadWithLate), so nothing newer is lost.
import { api, request } from "./api.js";
import { $, el, fmtFull, fmtTime, openDialog, snippet, toast } from "./dom.js";
import { pathIcon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";
import { loadWithLate } from "./ordered.js";

const enc = encodeURIComponent;
export const sessionsApi = {
  list: (state) => request("GET", `/api/sessions?state=${enc(state)}`),
  templates: () => request("GET", "/api/sessions/templates"),
  deleteTemplate: (id) => request("DELETE", `/api/sessions/templates/${enc(id)}`),
  start: (body) => request("POST", "/api/sessions", { json: body }),
  end: (id) => request("POST", `/api/sessions/${id}/end`),
  requestDraft: (body) => request("POST", "/api/sessions/request-draft", { json: body }),
  saveDraft: (messageId) => request("POST", `/api/sessions/drafts/${messageId}/save`),
  dismissDraft: (messageId) => request("POST", `/api/sessions/drafts/${messageId}/dismiss`),
};

const SHAPES = {
  play: ["M8 5l11 7-11 7z"],
  stop: ["M7 7h10v10H7z"],
  step: ["M9 6l6 6-6 6"],
  flag: ["M5 21V4", "M5 4h11l-2 4 2 4H5"],
};
const RUNNING = new Set(["active", "paused"]);
const GOAL_MAX = 500;
const SESSION_BLOCK = /```session[^\n]*\n[\s\S]*?(```|$)/g;

export function sessionIcon(name, size = 16) {
  return pathIcon(SHAPES[name], size);
}

function button(className, text, label) {
  const b = el("button", className, text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  return b;
}

function str(value) {
  return typeof value === "string" ? value : "";
}

/** Changes a node's text only when it differs (a live region must not re-announce the same words). */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Whether copy `a` of a session is older than copy `b`. The server's integer `version` grows with
 * every change of the session (two turns in one second included); a copy without one (an older
 * server) falls back to comparing `updated_at` as a time.
 */
export function isOlder(a, b) {
  if (Number.isInteger(a.version) && Number.isInteger(b.version)) return a.version < b.version;
  const t = (s) => Date.parse(str(s.updated_at)) || 0;
  return t(a) < t(b);
}

export class Sessions {
  constructor(app) {
    this.app = app;
    this.running = new Map(); // id -> running session (active or paused), every channel
    this.templates = null; // the last list from the server (the launcher refreshes it)
    this.late = null;
    this.generation = 0;
    this.confirming = null; // id of the session whose End shows its inline confirm on the bar
    this.bar = $("session-bar");
    // The bar's parts for the open channel's session stay in the page and only change their text:
    // a screen reader announces a change of a live region that already exists ("Your turn"), not
    // one that is created with its text.
    this.info = el("div", "session-info");
    this.nameText = el("span");
    const name = el("strong", "session-name");
    name.append(sessionIcon("play", 14), this.nameText);
    this.phaseText = el("span", "session-phase");
    this.turn = el("span", "session-turn");
    this.turn.setAttribute("role", "status");
    this.info.append(name, el("span", "sep", "·"), this.phaseText, el("span", "sep", "·"), this.turn);
    this.actions = el("div", "session-actions");
    this.bar.append(this.info, this.actions);
    this.toggle = $("sessions-toggle");
    this.toggle.append(sessionIcon("play", 18));
    this.toggle.addEventListener("click", async () => {
      await this.openLauncher();
      // On a phone the button sits in the folded channel actions: the focus goes back to "…".
      if (!this.toggle.getClientRects().length && document.activeElement === document.body) $("channel-more").focus();
    });
    this.bar.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && this.confirming != null) {
        ev.stopPropagation();
        this.confirming = null;
        this.render();
        this.bar.querySelector(".session-end")?.focus();
      }
    });
  }

  // -- loading ----------------------------------------------------------------------------------
  /** After a (re)connect: the running sessions of every channel (some may have moved on meanwhile). */
  async refresh() {
    const gen = ++this.generation;
    const loaded = await loadWithLate(
      this,
      async () => [...(await sessionsApi.list("active")), ...(await sessionsApi.list("paused"))],
      "sessions",
    );
    if (!loaded || gen !== this.generation) return;
    this.running = new Map(loaded.result.filter((s) => RUNNING.has(s.state)).map((s) => [s.id, s]));
    for (const e of loaded.late) this.onEvent(e, false);
    this.render();
  }

  /** The running session of `channel`, if any. */
  inChannel(channel) {
    for (const s of this.running.values()) if (s.channel === channel) return s;
    return null;
  }

  // -- live events ------------------------------------------------------------------------------
  onEvent(e, live = true) {
    if (live) this.late?.push(e);
    const s = e.session;
    if (!s || s.id == null) return;
    const known = this.running.get(s.id);
    // An older copy arriving late must not bring back a newer state.
    if (known && isOlder(s, known)) return;
    if (RUNNING.has(s.state) && e.action !== "ended" && e.action !== "complete") this.running.set(s.id, s);
    else this.running.delete(s.id);
    if (!this.running.has(s.id) && this.confirming === s.id) this.confirming = null;
    this.render();
  }

  onTemplateEvent(e) {
    if (!this.templates || !e.template) return;
    const rest = this.templates.filter((t) => t.id !== e.template.id);
    this.templates = e.action === "deleted" ? rest : [...rest, e.template];
    this.launcher?.renderTemplates();
  }

  renameChannel(old, name) {
    for (const [id, s] of this.running) if (s.channel === old) this.running.set(id, { ...s, channel: name });
    this.render();
  }

  // -- the bar ----------------------------------------------------------------------------------
  /** Who the session waits for, in words, and whether it is this person's turn. */
  turnText(s) {
    const who = s.current_agent;
    if (!who) return "";
    if (s.state === "paused") return `Paused: waiting for ${who} to answer`;
    if (s.waiting_on_person) return who === this.app.me() ? "Your turn" : `Waiting for ${who}`;
    const agent = this.app.agent(who);
    return `Waiting for ${who}${agent?.state === "offline" ? " (offline)" : ""}`;
  }

  render() {
    const bar = this.bar;
    const here = this.inChannel(this.app.channel);
    // Re-rendering keeps the focus on the same control (by its class) when it was on the bar.
    const focused = bar.contains(document.activeElement) ? [...document.activeElement.classList].at(-1) : null;
    for (const link of bar.querySelectorAll(":scope > .session-elsewhere")) link.remove();
    this.actions.replaceChildren();
    bar.classList.toggle("compact", !here);
    this.info.hidden = this.actions.hidden = !here;
    if (here) this.renderHere(here);
    else this.renderElsewhere();
    bar.hidden = !here && !bar.querySelector(".session-elsewhere");
    if (focused) (bar.querySelector(`button.${focused}`) || bar.querySelector("button"))?.focus();
  }

  renderHere(s) {
    const bar = this.bar;
    bar.dataset.state = s.state;
    bar.setAttribute("aria-label", `Session: ${s.template_name}`);
    setText(this.nameText, s.template_name || "Session");
    setText(this.phaseText, `Phase ${(s.phase ?? 0) + 1}/${s.total_phases ?? "?"}: ${s.phase_name || ""}`);
    setText(this.turn, this.turnText(s));
    this.turn.classList.toggle("paused", s.state === "paused");
    this.turn.classList.toggle("mine", s.state !== "paused" && s.waiting_on_person && s.current_agent === this.app.me());
    if (s.goal) this.info.title = `Goal: ${s.goal}`;
    else this.info.removeAttribute("title");
    const actions = this.actions;
    actions.removeAttribute("role");
    actions.removeAttribute("aria-label");
    if (this.confirming === s.id) {
      const q = el("span", "session-confirm-text", "End this session?");
      const yes = button("btn small session-danger session-end-yes", "End session");
      const no = button("btn small session-end-no", "Keep going");
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        try {
          this.onEvent({ action: "ended", session: await sessionsApi.end(s.id) }, false);
        } catch (err) {
          yes.disabled = false;
          toast(`Could not end the session: ${err.message}`);
        }
      });
      no.addEventListener("click", () => {
        this.confirming = null;
        this.render();
        this.bar.querySelector(".session-end")?.focus();
      });
      actions.setAttribute("role", "group");
      actions.setAttribute("aria-label", "End this session?");
      actions.append(q, yes, no);
    } else {
      const end = button("btn small session-end", null, `End session ${s.template_name}`);
      end.append(sessionIcon("stop", 14), el("span", null, "End"));
      end.addEventListener("click", () => {
        this.confirming = s.id;
        this.render();
        this.bar.querySelector(".session-end-no")?.focus();
      });
      actions.append(end);
    }
  }

  renderElsewhere() {
    const bar = this.bar;
    delete bar.dataset.state;
    setText(this.turn, "");
    bar.setAttribute("aria-label", "Sessions in other channels");
    const others = [...this.running.values()].filter((s) => this.app.channels.has(s.channel));
    for (const s of others.slice(0, 3)) {
      const go = button("session-elsewhere", null, `Session ${s.template_name} running in #${s.channel}: open the channel`);
      go.append(sessionIcon("play", 12), `Session in #${s.channel}`);
      go.addEventListener("click", () => this.app.open(s.channel));
      bar.append(go);
    }
  }

  // -- timeline ---------------------------------------------------------------------------------
  /** session_start / session_phase / session_end banners (system card messages). */
  renderBanner(msg, li) {
    const meta = msg.metadata || {};
    li.classList.add("system", "session-banner", msg.type.replace("_", "-"));
    const line = el("div", "session-banner-line");
    const text = el("div", "session-banner-text");
    const head = (glyph, words) => {
      const h = el("span", "session-banner-head");
      h.append(el("span", "glyph", glyph), el("strong", null, words));
      text.append(h);
    };
    if (msg.type === "session_start") {
      head("▶", `Session started: ${str(meta.template_name) || "session"}`);
      if (meta.goal) text.append(el("span", "session-goal", `Goal: ${meta.goal}`));
      const cast = meta.cast && typeof meta.cast === "object" ? Object.entries(meta.cast) : [];
      if (cast.length) text.append(el("span", "session-cast", cast.map(([role, who]) => `${role}: ${who}`).join(" · ")));
    } else if (msg.type === "session_phase") {
      head("▸", `Phase ${(meta.phase ?? 0) + 1}/${meta.total_phases ?? "?"}: ${str(meta.phase_name)}`);
      // Who speaks: the server's line says it with the cast ("… — reviewer (codex), red_team (ann)").
      const roles = Array.isArray(meta.participants) ? meta.participants.join(", ") : "";
      const who = String(msg.text || "").split(" — ")[1] || roles;
      if (who) text.append(el("span", "session-cast", who));
    } else {
      const reason = str(meta.reason) || "ended";
      // The server's own line names the session ("Session Debate ended by ann.").
      head("■", String(msg.text || "").trim().replace(/\.$/, "") || `Session ${reason}`);
      const out = meta.output_message_id;
      if (typeof out === "number") {
        const view = button("btn small session-view-output", "View output");
        view.addEventListener("click", () => this.app.jump(out, msg.channel));
        text.append(view);
      }
    }
    line.append(text);
    const time = el("time", "time", fmtTime(msg.created_at));
    time.dateTime = new Date(msg.created_at * 1000).toISOString();
    time.title = fmtFull(msg.created_at);
    line.append(time);
    // A .msg-body like every message's: the wake-up it caused shows under it (timeline.js).
    const body = el("div", "msg-body session-banner-body");
    body.append(line);
    li.append(body);
    return li;
  }

  /** The visible marker on a session's output message (metadata.session_output). */
  markOutput(li, meta, msg) {
    if (!msg.metadata?.session_output || msg.deleted) return;
    li.classList.add("session-output");
    const tag = el("span", "tag type-session-output");
    tag.append(sessionIcon("flag", 11), "Session output");
    meta.append(tag);
  }

  /** A session_draft card: the agent's words outside the ```session block, then the draft. */
  renderDraft(msg) {
    const m = msg.metadata || {};
    const status = str(m.status) || "open";
    const t = m.template && typeof m.template === "object" ? m.template : {};
    const name = str(t.name) || "Session draft";
    const box = el("div", "session-draft-wrap");
    const prose = String(msg.text || "").replace(SESSION_BLOCK, "").trim();
    const card = el("div", `session-draft ${status}${m.valid ? " valid" : " invalid"}`);
    const rev = `rev ${m.revision ?? 1}`;
    if (status !== "open") {
      if (prose) box.append(renderMarkdown(snippet(prose, 160), { mention: (n) => this.app.mention(n) }));
      const said = {
        superseded: "superseded by a newer revision",
        dismissed: "dismissed",
        saved: "saved as a template",
        run: "run",
      };
      const line = el("p", "session-draft-line");
      line.append(sessionIcon("play", 14), el("strong", null, name), ` · ${rev} · ${said[status] || status}`);
      card.append(line);
      box.append(card);
      return box;
    }
    if (prose) box.append(renderMarkdown(prose, { mention: (n) => this.app.mention(n) }));
    const head = el("div", "session-draft-head");
    const title = m.valid ? name : "Session draft with problems";
    head.append(sessionIcon("play", 16), el("strong", "session-draft-name", title), el("span", "tag", rev));
    card.append(head);
    if (m.valid) {
      if (t.description) card.append(el("p", "session-draft-desc", t.description));
      if (Array.isArray(t.roles)) card.append(el("p", "session-draft-roles", `Roles: ${t.roles.join(", ")}`));
      const phases = el("ol", "session-draft-phases");
      for (const p of Array.isArray(t.phases) ? t.phases : []) {
        const li = el("li");
        const top = el("div");
        top.append(el("strong", null, str(p.name)), ` (${(p.participants || []).join(", ")})`);
        if (p.is_output) top.append(" ", el("span", "tag", "output"));
        li.append(top, el("div", "session-draft-prompt", str(p.prompt)));
        phases.append(li);
      }
      card.append(phases);
    } else {
      const errs = el("ul", "session-draft-errors");
      errs.setAttribute("aria-label", "Problems");
      for (const e of Array.isArray(m.errors) ? m.errors : []) errs.append(el("li", null, String(e)));
      card.append(errs);
    }
    const foot = el("div", "session-draft-foot");
    foot.setAttribute("role", "group");
    foot.setAttribute("aria-label", `Session draft ${name}, ${rev}`);
    const all = [];
    const add = (text, cls, fn) => {
      const b = button(`btn small ${cls}`, text);
      b.addEventListener("click", async () => {
        all.forEach((x) => (x.disabled = true));
        try {
          await fn();
        } catch (err) {
          toast(`${text}: ${err.message}`);
        } finally {
          all.forEach((x) => (x.disabled = false));
        }
      });
      all.push(b);
      foot.append(b);
    };
    if (m.valid) {
      add("Run", "primary", () => this.openLauncher({ draft: msg }));
      add("Save as template", "", async () => {
        const saved = await sessionsApi.saveDraft(msg.id);
        toast(`Saved the template “${saved.name}”.`);
      });
    }
    add("Request changes", "", () => this.requestChanges(msg));
    add("Dismiss", "", async () => this.app.timeline.update(await sessionsApi.dismissDraft(msg.id)));
    card.append(foot);
    box.append(card);
    return box;
  }

  async requestChanges(msg) {
    const m = msg.metadata || {};
    const agent = str(m.proposed_by) || msg.sender;
    const note = el("textarea", "session-note");
    note.rows = 4;
    note.maxLength = 1000;
    note.placeholder = "What should change?";
    const sent = await openDialog({
      title: "Request changes",
      text: `${agent} gets your note in #${msg.channel} and answers with a new revision.`,
      fields: [{ name: "note", label: "Note", input: note }],
      ok: "Send note",
      submit: async () => {
        const text = note.value.trim().replace(/\s+/g, " ");
        if (!text) throw new Error("Write what should change.");
        return api.post(msg.channel, { text: `@${agent} Please revise session draft ${m.draft_id}: ${text}`, attachments: [] });
      },
    });
    if (sent?.id) this.app.onSent(sent);
  }

  // -- the launcher -----------------------------------------------------------------------------
  /** The launcher dialog; with `draft` (a session_draft message) it runs that draft instead. */
  async openLauncher({ draft = null } = {}) {
    const channel = this.app.channel;
    const launcher = new Launcher(this, channel, draft);
    this.launcher = launcher;
    const dialog = $("dialog");
    dialog.classList.add("session-launcher");
    try {
      const asked = openDialog({
        title: draft ? `Run the draft in #${channel}` : `Start a session in #${channel}`,
        fields: [{ node: launcher.node }],
        ok: "Start",
        submit: () => launcher.start(),
      });
      launcher.goal.focus(); // the dialog focused Start: the goal comes first
      const started = await asked;
      // The bar shows it started (no toast: it would sit over the banners for seconds).
      if (started?.id != null) this.onEvent({ action: "started", session: started }, false);
    } finally {
      dialog.classList.remove("session-launcher");
      if (this.launcher === launcher) this.launcher = null;
    }
  }
}

/** The launcher's body: goal, templates, cast; and "Design a session". */
class Launcher {
  constructor(sessions, channel, draft) {
    this.sessions = sessions;
    this.app = sessions.app;
    this.channel = channel;
    this.draft = draft;
    this.selected = draft ? null : "code-review";
    this.cast = {}; // role -> chosen name (kept when the template changes)
    this.node = el("div", "launcher");
    const goalLabel = el("label", "field");
    this.goal = el("textarea", "launcher-goal");
    this.goal.rows = 2;
    this.goal.maxLength = GOAL_MAX;
    this.goal.placeholder = "What should the session achieve? (optional)";
    goalLabel.append(el("span", null, "Goal"), this.goal);
    this.node.append(goalLabel);
    this.list = el("div", "launcher-templates");
    this.list.setAttribute("role", "radiogroup");
    this.list.setAttribute("aria-label", "Template");
    this.castBox = el("fieldset", "launcher-cast");
    if (draft) {
      const t = draft.metadata?.template || {};
      const about = el("p", "launcher-draft");
      about.append(el("strong", null, str(t.name) || "Session draft"), ` · rev ${draft.metadata?.revision ?? 1}`);
      if (t.description) about.append(` · ${t.description}`);
      this.node.append(about);
    }
    if (!draft) this.node.append(el("h3", "launcher-head", "Template"), this.list);
    this.node.append(this.castBox);
    if (!draft) this.node.append(this.designSection());
    this.renderTemplates();
    if (!draft) this.loadTemplates();
  }

  async loadTemplates() {
    try {
      this.sessions.templates = await sessionsApi.templates();
    } catch (err) {
      this.list.replaceChildren(el("p", "error small", `Could not load the templates: ${err.message}`));
      return;
    }
    this.renderTemplates();
  }

  template() {
    if (this.draft) return this.draft.metadata?.template || null;
    return (this.sessions.templates || []).find((t) => t.id === this.selected) || null;
  }

  renderTemplates() {
    if (!this.draft) {
      const list = this.sessions.templates;
      this.list.replaceChildren();
      if (!list) this.list.append(el("p", "muted small", "Loading templates…"));
      else if (!list.some((t) => t.id === this.selected)) this.selected = list[0]?.id ?? null;
      for (const t of list || []) this.list.append(this.templateCard(t));
    }
    this.renderCast();
  }

  templateCard(t) {
    const card = el("div", "launcher-template");
    const pick = el("button", "launcher-pick");
    pick.type = "button";
    pick.setAttribute("role", "radio");
    const on = t.id === this.selected;
    pick.setAttribute("aria-checked", String(on));
    pick.tabIndex = on ? 0 : -1;
    pick.dataset.id = t.id;
    pick.append(el("strong", null, t.name), el("span", "launcher-desc", t.description || ""));
    pick.append(el("span", "launcher-phases", t.phases.map((p) => p.name).join(" → ")));
    pick.addEventListener("click", () => this.select(t.id));
    pick.addEventListener("keydown", (ev) => this.onRadioKey(ev));
    card.append(pick);
    card.classList.toggle("selected", on);
    if (!t.builtin) card.append(this.deleteControl(t, card));
    return card;
  }

  onRadioKey(ev) {
    const keys = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    if (!(ev.key in keys)) return;
    ev.preventDefault();
    const list = this.sessions.templates || [];
    const i = list.findIndex((t) => t.id === this.selected);
    const next = list[(i + keys[ev.key] + list.length) % list.length];
    if (next) this.select(next.id, true);
  }

  select(id, focus = false) {
    this.selected = id;
    this.renderTemplates();
    if (focus) this.list.querySelector(`.launcher-pick[data-id="${CSS.escape(id)}"]`)?.focus();
  }

  /** A custom template's delete, with an inline confirm (the page has one dialog: this one). */
  deleteControl(t, card) {
    const box = el("div", "launcher-delete");
    const del = button("icon-btn small danger", null, `Delete template ${t.name}`);
    del.append(pathIcon(["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"], 16));
    del.addEventListener("click", () => {
      const q = el("span", "small", `Delete “${t.name}”?`);
      const yes = button("btn small session-danger", "Delete");
      const no = button("btn small", "Keep");
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        try {
          await sessionsApi.deleteTemplate(t.id);
          this.sessions.onTemplateEvent({ action: "deleted", template: { id: t.id } });
        } catch (err) {
          yes.disabled = false;
          toast(`Could not delete the template: ${err.message}`);
        }
      });
      no.addEventListener("click", () => {
        const fresh = this.templateCard(t);
        card.replaceWith(fresh);
        fresh.querySelector(".launcher-delete button")?.focus();
      });
      box.replaceChildren(q, yes, no);
      no.focus();
    });
    box.append(del);
    return box;
  }

  /** Who can take a role: the online agents, then this person. */
  candidates() {
    const agents = this.app
      .agentList()
      .filter((a) => a.state !== "offline")
      .sort((a, b) => a.name.localeCompare(b.name));
    const named = (a) => (a.label && a.label !== a.name ? `${a.label} (@${a.name})` : `@${a.name}`);
    return [...agents.map((a) => [a.name, named(a)]), [this.app.me(), `You (${this.app.me()})`]];
  }

  renderCast() {
    const box = this.castBox;
    const t = this.template();
    box.replaceChildren(el("legend", null, "Cast"));
    if (!t) return;
    const who = this.candidates();
    const agents = who.slice(0, -1);
    if (!agents.length) box.append(el("p", "muted small", "No agent is online: start one, or take the roles yourself."));
    (t.roles || []).forEach((role, i) => {
      const label = el("label", "launcher-role");
      const select = el("select");
      select.dataset.role = role;
      select.setAttribute("aria-label", `Who plays ${role}`);
      for (const [value, text] of who) {
        const opt = el("option", null, text);
        opt.value = value;
        select.append(opt);
      }
      // Default: round-robin over the online agents (what the server would do), else this person.
      const fallback = agents.length ? agents[i % agents.length][0] : this.app.me();
      select.value = who.some(([v]) => v === this.cast[role]) ? this.cast[role] : fallback;
      this.cast[role] = select.value;
      select.addEventListener("change", () => (this.cast[role] = select.value));
      const phases = (t.phases || []).filter((p) => (p.participants || []).includes(role)).map((p) => p.name);
      label.append(el("span", "launcher-role-name", role), select);
      if (phases.length) label.append(el("span", "launcher-role-phases", phases.join(", ")));
      box.append(label);
    });
  }

  async start() {
    const t = this.template();
    if (!t) throw new Error("Pick a template.");
    const body = { channel: this.channel, cast: {} };
    for (const role of t.roles || []) body.cast[role] = this.cast[role];
    const goal = this.goal.value.trim();
    if (goal) body.goal = goal;
    if (this.draft) body.draft_message_id = this.draft.id;
    else body.template_id = t.id;
    return sessionsApi.start(body);
  }

  designSection() {
    const section = el("details", "launcher-design");
    const summary = el("summary", null, "Design a session with an agent");
    section.append(summary);
    const agentLabel = el("label", "field");
    const agent = el("select");
    agentLabel.append(el("span", null, "Agent"), agent);
    const descLabel = el("label", "field");
    const desc = el("textarea", "launcher-ask");
    desc.rows = 2;
    desc.maxLength = 500;
    desc.placeholder = "e.g. a security review with an attacker and a defender";
    descLabel.append(el("span", null, "What should the session do?"), desc);
    const ask = button("btn small", "Ask for a draft");
    const status = el("p", "small launcher-design-status");
    status.setAttribute("role", "status");
    section.addEventListener("toggle", () => {
      agent.replaceChildren();
      for (const a of this.app.agentList().sort((x, y) => x.name.localeCompare(y.name))) {
        const opt = el("option", null, `@${a.name}${a.state === "offline" ? " (offline)" : ""}`);
        opt.value = a.name;
        agent.append(opt);
      }
      ask.disabled = !agent.options.length;
      if (!agent.options.length) status.textContent = "No agent has joined yet.";
    });
    ask.addEventListener("click", async () => {
      const description = desc.value.trim();
      status.classList.remove("error");
      if (!description) {
        status.classList.add("error");
        status.textContent = "Describe the session first.";
        desc.focus();
        return;
      }
      ask.disabled = true;
      try {
        const msg = await sessionsApi.requestDraft({ agent: agent.value, channel: this.channel, description });
        if (msg?.id) this.app.onSent(msg);
        status.textContent = `Asked @${agent.value}: the draft appears in #${this.channel} as a card.`;
        desc.value = "";
      } catch (err) {
        status.classList.add("error");
        status.textContent = err.message;
      } finally {
        ask.disabled = false;
      }
    });
    section.append(agentLabel, descLabel, ask, status);
    return section;
  }
}
