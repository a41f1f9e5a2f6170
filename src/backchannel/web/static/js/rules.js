// Rules: the room's standing instructions for agents, a panel to manage them, and the
// `rule_proposal` cards of the timeline.
//
// The panel groups rules as Active (at most ACTIVE_MAX, shown before the limit bites), Drafts,
// Proposals and Archived (collapsed). Rules reorder within their group by drag and drop or with
// Alt+ArrowUp/Down, like the jobs board. Every change goes to the server and comes back to every
// open page as a `rule` event; the order is kept locally as positions (`pos`), set from the
// server's list on load and from `reordered` events.
import { api, request } from "./api.js";
import { $, el, openDialog, snippet, store, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";
import { OrderedGroups, altKeys, dropSpot, focusStep, groupSection, liveRegion, loadWithLate, panelMethods, wireDrag } from "./ordered.js";

export const TEXT_MAX = 160;
export const REASON_MAX = 240;
export const ACTIVE_MAX = 10;
const GROUPS = ["active", "draft", "proposed", "archived"];
const LABELS = { active: "Active", draft: "Drafts", proposed: "Proposals", archived: "Archived" };
const LIMIT_TEXT = `${ACTIVE_MAX} rules are active: archive one or move it to drafts first.`;
const SHAPES = {
  rules: ["M4 6l1.5 1.5L8 5", "M4 12l1.5 1.5L8 11", "M4 18l1.5 1.5L8 17", "M11 6h9", "M11 12h9", "M11 18h9"],
  grip: ["M9 6h.01", "M15 6h.01", "M9 12h.01", "M15 12h.01", "M9 18h.01", "M15 18h.01"],
};

const rulesApi = {
  list: () => request("GET", "/api/rules"),
  create: (payload) => request("POST", "/api/rules", { json: payload }),
  update: (id, patch) => request("PATCH", `/api/rules/${id}`, { json: patch }),
  destroy: (id) => request("DELETE", `/api/rules/${id}`),
  reorder: (ids) => request("POST", "/api/rules/reorder", { json: { ordered_ids: ids } }),
  remind: () => request("POST", "/api/rules/remind"),
  decide: (id, decision) => request("POST", `/api/rules/${id}/decide`, { json: { decision } }),
};

function button(className, text, label) {
  const b = el("button", className, text);
  b.type = "button";
  if (label) {
    b.setAttribute("aria-label", label);
    b.title = label;
  }
  return b;
}

/** A labelled text field with a live "n/max" counter (the counter is not part of its name). */
export function countedField(label, input, max) {
  const box = el("label", "field");
  const top = el("span", "field-top");
  const counter = el("span", "counter muted");
  counter.setAttribute("aria-hidden", "true");
  input.maxLength = max;
  const count = () => {
    counter.textContent = `${input.value.length}/${max}`;
    counter.classList.toggle("near", input.value.length >= max - 10);
  };
  input.addEventListener("input", count);
  count();
  top.append(el("span", null, label), counter);
  box.append(top, input);
  return box;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export class Rules {
  constructor(app) {
    this.app = app;
    this.rules = new OrderedGroups(); // id -> rule, with `pos`: its place in its group
    this.loaded = false;
    this.archivedOpen = store.get("rulesArchivedOpen", false);
    this.editing = null; // id of the rule being edited inline
    this.dragId = null;
    this.build();
  }

  // -- DOM --------------------------------------------------------------------------------------
  build() {
    this.toggle = $("rules-toggle");
    this.toggle.prepend(pathIcon(SHAPES.rules, 16));
    this.countEl = el("span", "rules-count");
    this.countEl.setAttribute("aria-hidden", "true");
    this.toggle.append(this.countEl);
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.openPanel()));
    // One side panel at a time: opening the jobs board closes this one.
    $("jobs-toggle")?.addEventListener("click", () => this.isOpen() && this.close(false));

    const panel = el("aside", "rules-panel");
    panel.id = "rules-panel";
    panel.hidden = true;
    panel.setAttribute("aria-labelledby", "rules-heading");
    this.panel = panel;
    const head = el("div", "rules-head");
    const h2 = el("h2", null, "Rules");
    h2.id = "rules-heading";
    h2.tabIndex = -1;
    this.newBtn = button("btn small primary", null);
    this.newBtn.append(icon("plus", 16), "New rule");
    this.newBtn.setAttribute("aria-expanded", "false");
    this.newBtn.addEventListener("click", () => (this.createForm.hidden ? this.showCreate() : this.hideCreate()));
    const closeBtn = button("icon-btn", null, "Close rules");
    closeBtn.append(icon("x"));
    closeBtn.addEventListener("click", () => this.close());
    head.append(h2, this.newBtn, closeBtn);
    const intro = el("p", "rules-intro muted small", "Active rules reach every agent in its wake-up prompt after each change, and again every few wake-ups.");

    this.createForm = this.buildCreate();
    this.groups = el("div", "rule-groups");
    this.groupEls = {};
    for (const status of GROUPS) {
      const toggle = status === "archived" ? () => this.setArchivedOpen(!this.archivedOpen) : null;
      const group = groupSection("rule", status, LABELS[status], toggle);
      const { section, head: gh, list } = group;
      if (status === "active") {
        this.remindBtn = button("btn small remind-btn", "Remind agents");
        this.remindBtn.title = "Send the active rules to every agent on its next wake-up";
        this.remindBtn.addEventListener("click", () => this.remind());
        gh.append(this.remindBtn);
      }
      section.append(gh);
      if (status === "active") {
        this.limitNote = el("p", "rule-limit small");
        this.limitNote.id = "rule-limit-note";
        section.append(this.limitNote);
      }
      section.append(list);
      this.groupEls[status] = group;
      this.groups.append(section);
    }
    wireDrag(this, this.groups, {
      card: ".rule-card",
      name: "rule",
      marks: ["dragging", "drop-before", "drop-end"],
      canStart: (card) => !card.classList.contains("editing"),
      where: (ev) => this.dropTarget(ev),
      show: (target) => {
        for (const n of this.groups.querySelectorAll(".drop-before, .drop-end")) n.classList.remove("drop-before", "drop-end");
        (target.before || target.list).classList.add(target.before ? "drop-before" : "drop-end");
      },
      drop: (id, target) => this.move(id, target.index),
    });
    const hint = el("p", "rules-hint muted small");
    hint.append("Click a rule to edit it. Drag to reorder, or focus a rule and press ", ...altKeys("↑", "↓"), ".");
    this.announcer = liveRegion();
    const scroll = el("div", "rules-scroll");
    scroll.append(head, intro, this.createForm, this.groups, hint, this.announcer);
    panel.append(scroll);
    panel.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape" || ev.defaultPrevented) return;
      if (ev.target.closest?.("input, textarea, select")) return;
      ev.preventDefault();
      this.close();
    });
    $("app").append(panel);
  }

  buildCreate() {
    const form = el("form", "rule-create rule-form");
    form.hidden = true;
    form.setAttribute("aria-label", "New rule");
    form.noValidate = true;
    const text = el("textarea");
    text.name = "text";
    text.rows = 2;
    text.placeholder = "e.g. Run the tests before you say a change is done.";
    const reason = el("input");
    reason.name = "reason";
    reason.placeholder = "Why (optional)";
    const error = el("p", "error small");
    error.setAttribute("role", "alert");
    const row = el("div", "dialog-buttons");
    const cancel = button("btn small", "Cancel");
    const draft = el("button", "btn small", "Add as draft");
    draft.type = "submit";
    draft.value = "draft";
    const active = el("button", "btn small primary", "Add and activate");
    active.type = "submit";
    active.value = "active";
    active.dataset.activate = "";
    row.append(cancel, draft, active);
    form.append(countedField("Rule", text, TEXT_MAX), countedField("Reason", reason, REASON_MAX), error, row);
    cancel.addEventListener("click", () => this.hideCreate());
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        this.hideCreate();
      } else if (ev.key === "Enter" && ev.target === text && !ev.shiftKey) {
        ev.preventDefault(); // a rule is one line: Enter adds it (as a draft)
        form.requestSubmit(draft);
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = ev.submitter?.value === "active" ? "active" : "draft";
      error.textContent = "";
      if (status === "active" && this.atLimit()) {
        error.textContent = LIMIT_TEXT;
        return;
      }
      const payload = { text: text.value.trim(), status };
      if (reason.value.trim()) payload.reason = reason.value.trim();
      if (!payload.text) {
        error.textContent = "Write the rule first.";
        text.focus();
        return;
      }
      draft.disabled = active.disabled = true;
      try {
        const rule = await rulesApi.create(payload);
        this.upsert(rule);
        text.value = reason.value = "";
        for (const input of [text, reason]) input.dispatchEvent(new Event("input"));
        this.say(`Rule added to ${LABELS[rule.status]}.`);
        text.focus();
      } catch (err) {
        error.textContent = err.message;
      } finally {
        draft.disabled = active.disabled = false;
      }
    });
    this.createFields = { text, reason, error };
    return form;
  }

  // -- data -------------------------------------------------------------------------------------
  /** Load (or after a reconnect, reload) every rule; the server sends them in display order. */
  async refresh() {
    const loaded = await loadWithLate(this, () => rulesApi.list(), "rules");
    if (!loaded) return;
    const { result: list, late } = loaded;
    this.rules = OrderedGroups.fromList(list);
    this.loaded = true;
    for (const e of late) this.onEvent(e, false);
    this.render();
  }

  onEvent(e, live = true) {
    if (live) this.late?.push(e);
    if (e.action === "created" || e.action === "updated") {
      if (e.rule && !this.same(e.rule)) this.upsert(e.rule);
    } else if (e.action === "deleted") {
      if (e.rule) this.removeLocal(e.rule.id);
    } else if (e.action === "reordered") {
      this.rules.applyOrder(e.status, e.ordered_ids || []);
      this.render();
    }
  }

  upsert(rule) {
    this.rules.set(rule.id, { ...rule, pos: this.rules.posFor(rule) });
    this.render();
  }

  /** True when this page already shows `rule` as it is (e.g. after a channel rename it applied): no redraw. */
  same(rule) {
    const known = this.rules.get(rule.id);
    if (!known) return false;
    const { pos, ...shown } = known;
    return JSON.stringify(Object.entries(shown).sort()) === JSON.stringify(Object.entries(rule).sort());
  }

  /** A channel was renamed: its rules follow at once (the server's `rule updated` events then match). */
  renameChannel(old, name) {
    let changed = false;
    for (const [id, rule] of this.rules) {
      if (rule.channel !== old) continue;
      this.rules.set(id, { ...rule, channel: name });
      changed = true;
    }
    if (changed) this.render();
  }

  /**
   * A channel was deleted: the server drops (or archives) its rules in the same transaction.
   * If their `rule` events have not arrived yet, one reload shows the server's state.
   */
  dropChannel(name) {
    if ([...this.rules.values()].some((r) => r.channel === name)) this.refresh();
  }

  removeLocal(id) {
    if (!this.rules.delete(id)) return;
    if (this.editing === id) this.editing = null;
    this.render();
  }

  activeCount() {
    let n = 0;
    for (const r of this.rules.values()) if (r.status === "active") n += 1;
    return n;
  }

  atLimit() {
    return this.activeCount() >= ACTIVE_MAX;
  }

  // -- the panel ----------------------------------------------------------------------------------
  openPanel({ focus = true } = {}) {
    if (this.app.jobs?.isOpen()) this.app.jobs.close();
    this.panel.hidden = false;
    document.body.classList.add("rules-open");
    this.toggle.setAttribute("aria-expanded", "true");
    if (!this.loaded) this.refresh();
    if (focus) (this.groups.querySelector(".rule-main") || this.newBtn).focus();
  }

  close(refocus = true) {
    this.panel.hidden = true;
    document.body.classList.remove("rules-open");
    this.toggle.setAttribute("aria-expanded", "false");
    if (refocus) this.toggle.focus();
  }

  showCreate() {
    this.openCreate(this.createFields.text);
  }

  setArchivedOpen(open) {
    this.archivedOpen = open;
    store.set("rulesArchivedOpen", open);
    this.render();
  }

  render() {
    const active = document.activeElement;
    const focusCard = active?.closest?.(".rule-card");
    const focusId = focusCard && !focusCard.classList.contains("editing") ? Number(focusCard.dataset.id) : null;
    const focusAction = focusId != null && active !== focusCard.querySelector(".rule-main") ? active.dataset.action : null;
    const keep = this.editNode?.contains(active) ? active : null; // moving the open editor drops its focus
    const n = this.activeCount();
    const full = n >= ACTIVE_MAX;
    for (const status of GROUPS) {
      const { list, count, label, section } = this.groupEls[status];
      const rules = this.rules.ordered(status);
      if (status === "active") {
        count.textContent = `${n}/${ACTIVE_MAX}`;
        count.setAttribute("aria-label", `${n} of at most ${ACTIVE_MAX}`);
      } else {
        count.textContent = String(rules.length);
        count.setAttribute("aria-label", plural(rules.length, "rule"));
      }
      section.hidden = status === "proposed" && !rules.length;
      const collapsed = status === "archived" && !this.archivedOpen;
      let items = collapsed ? [] : rules.map((r) => (this.editing === r.id ? this.editNode : this.renderCard(r, full)));
      if (!rules.length && !collapsed) items = [el("li", "rule-empty muted small", this.emptyText(status))];
      list.replaceChildren(...items);
      if (status === "archived") {
        list.hidden = collapsed;
        label.setAttribute("aria-expanded", String(!collapsed));
        section.classList.toggle("collapsed", collapsed);
      }
    }
    this.limitNote.textContent = full ? LIMIT_TEXT : n >= ACTIVE_MAX - 2 ? `${ACTIVE_MAX - n} more can be active.` : "";
    this.limitNote.classList.toggle("full", full);
    this.limitNote.hidden = !this.limitNote.textContent;
    this.toggle.setAttribute("aria-label", `Rules, ${n} of ${ACTIVE_MAX} active`);
    this.countEl.textContent = `${n}/${ACTIVE_MAX}`;
    this.toggle.classList.toggle("full", full);
    this.markActivates(full);
    if (keep && keep !== document.activeElement) keep.focus({ preventScroll: true });
    if (focusId != null) {
      const card = this.cardOf(focusId);
      const target = (focusAction && card?.querySelector(`[data-action="${focusAction}"]`)) || card?.querySelector(".rule-main");
      // Deleted elsewhere: the focus stays in the panel instead of falling to the page.
      (target || (this.isOpen() ? $("rules-heading") : null))?.focus({ preventScroll: false });
    }
  }

  emptyText(status) {
    return {
      active: "No active rules. Agents follow none.",
      draft: "No drafts.",
      proposed: "No proposals.",
      archived: "Nothing archived.",
    }[status];
  }

  /** Every Activate button on the page (panel and timeline cards) says so when the limit is reached. */
  markActivates(full = this.atLimit()) {
    for (const b of document.querySelectorAll("[data-activate]")) {
      if (full) {
        b.setAttribute("aria-disabled", "true");
        b.setAttribute("aria-describedby", "rule-limit-note");
        b.title = LIMIT_TEXT;
      } else {
        b.removeAttribute("aria-disabled");
        b.removeAttribute("aria-describedby");
        b.removeAttribute("title");
      }
    }
  }

  renderCard(rule, full) {
    const li = el("li", `rule-card status-${rule.status}`);
    li.dataset.id = String(rule.id);
    li.draggable = true;
    const grip = el("span", "rule-grip");
    grip.setAttribute("aria-hidden", "true");
    grip.append(pathIcon(SHAPES.grip, 14));
    const main = el("button", "rule-main");
    main.type = "button";
    main.title = "Edit this rule";
    main.append(el("span", "rule-text", rule.text));
    if (rule.reason) main.append(el("span", "rule-reason", rule.reason));
    const meta = [];
    if (rule.author) meta.push(`by ${rule.author}`);
    if (rule.channel) meta.push(`#${rule.channel} only`);
    if (meta.length) main.append(el("span", "rule-meta", meta.join(" · ")));
    main.addEventListener("click", () => this.startEdit(rule.id));
    main.addEventListener("keydown", (ev) => this.onCardKey(ev, rule.id));
    const actions = el("div", "rule-actions");
    actions.setAttribute("role", "group");
    actions.setAttribute("aria-label", `Rule: ${snippet(rule.text, 60)}`);
    const add = (action, text, fn, cls = "") => {
      const b = button(`btn small ${cls}`.trim(), text);
      b.dataset.action = action;
      b.addEventListener("click", fn);
      actions.append(b);
      return b;
    };
    const activate = () =>
      add("activate", "Activate", () => (rule.status === "proposed" ? this.decide(rule.id, "activate") : this.setStatus(rule.id, "active")));
    if (rule.status === "active") {
      add("draft", "Move to drafts", () => this.setStatus(rule.id, "draft"));
      add("archive", "Archive", () => this.setStatus(rule.id, "archived"));
    } else if (rule.status === "draft") {
      activate().dataset.activate = "";
      add("archive", "Archive", () => this.setStatus(rule.id, "archived"));
    } else if (rule.status === "proposed") {
      activate().dataset.activate = "";
      add("draft", "Add to drafts", () => this.decide(rule.id, "draft"));
      add("dismiss", "Dismiss", () => this.decide(rule.id, "dismiss"));
    } else {
      activate().dataset.activate = "";
      add("draft", "Move to drafts", () => this.setStatus(rule.id, "draft"));
    }
    if (rule.status !== "proposed") add("delete", "Delete", () => this.confirmDelete(rule.id), "danger-text");
    li.append(grip, main, actions);
    if (full) this.markActivatesIn(li);
    return li;
  }

  markActivatesIn(node) {
    for (const b of node.querySelectorAll("[data-activate]")) {
      b.setAttribute("aria-disabled", "true");
      b.setAttribute("aria-describedby", "rule-limit-note");
      b.title = LIMIT_TEXT;
    }
  }

  cardOf(id) {
    return this.groups.querySelector(`.rule-card[data-id="${id}"]`);
  }

  focusCard(id) {
    const rule = this.rules.get(id);
    if (rule?.status === "archived" && !this.archivedOpen) this.setArchivedOpen(true);
    this.cardOf(id)?.querySelector(".rule-main")?.focus();
  }

  onCardKey(ev, id) {
    const rule = this.rules.get(id);
    if (!rule || !["ArrowUp", "ArrowDown"].includes(ev.key) || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    if (ev.altKey) {
      const to = this.rules.stepTo(id, ev.key);
      if (to >= 0) this.move(id, to, { keyboard: true });
      return;
    }
    focusStep([...this.groups.querySelectorAll(".rule-list:not([hidden]) .rule-main")], ev.currentTarget, ev.key);
  }

  /** Put rule `id` at `index` of its own group (optimistic; the server's event confirms it). */
  async move(id, index, { keyboard = false } = {}) {
    const rule = this.rules.get(id);
    if (!rule) return;
    const { ids, at, same } = this.rules.placed(id, rule.status, index);
    if (same) return;
    this.rules.applyOrder(rule.status, ids);
    this.render();
    if (keyboard) this.focusCard(id);
    this.say(`Moved to ${at + 1} of ${ids.length} in ${LABELS[rule.status]}.`);
    try {
      await rulesApi.reorder(ids);
    } catch (err) {
      toast(`Could not reorder: ${err.message}`);
      this.refresh();
    }
  }

  limitBlocked() {
    if (!this.atLimit()) return false;
    toast(LIMIT_TEXT);
    return true;
  }

  async setStatus(id, status) {
    if (status === "active" && this.limitBlocked()) return;
    try {
      this.upsert(await rulesApi.update(id, { status }));
      this.focusCard(id);
      this.say(`Rule moved to ${LABELS[status]}.`);
    } catch (err) {
      toast(`Could not change the rule: ${err.message}`);
    }
  }

  /** A proposal decided from the panel: the same call (and the same once-only rule) as its card. */
  async decide(id, decision) {
    if (decision === "activate" && this.limitBlocked()) return;
    try {
      const result = await rulesApi.decide(id, decision);
      if (decision === "dismiss") this.removeLocal(id);
      else if (result?.status) this.upsert(result);
      this.say(decision === "dismiss" ? "Proposal dismissed." : `Rule moved to ${LABELS[result?.status] || "its group"}.`);
      if (decision !== "dismiss") this.focusCard(id);
      else (this.groups.querySelector(".rule-main") || this.newBtn).focus();
    } catch (err) {
      toast(`Could not decide: ${err.message}`);
      this.refresh();
    }
  }

  async confirmDelete(id) {
    const rule = this.rules.get(id);
    if (!rule) return;
    const done = await openDialog({
      title: "Delete this rule?",
      text: `“${snippet(rule.text, 120)}” is deleted for everyone. To keep it out of the prompts but on record, archive it instead.`,
      ok: "Delete rule",
      danger: true,
      submit: () => rulesApi.destroy(id),
    });
    if (done) {
      this.removeLocal(id);
      this.say("Rule deleted.");
      (this.groups.querySelector(".rule-main") || this.newBtn).focus();
    } else {
      this.focusCard(id);
    }
  }

  async remind() {
    this.remindBtn.disabled = true;
    try {
      await rulesApi.remind();
      toast("Every agent gets the active rules again on its next wake-up.");
    } catch (err) {
      toast(`Could not remind the agents: ${err.message}`);
    } finally {
      this.remindBtn.disabled = false;
    }
  }

  // -- inline edit --------------------------------------------------------------------------------
  startEdit(id) {
    const rule = this.rules.get(id);
    if (!rule) return;
    if (this.editing != null && this.editing !== id) this.cancelEdit(false);
    const li = el("li", `rule-card editing status-${rule.status}`);
    li.dataset.id = String(id);
    const form = el("form", "rule-form rule-edit");
    form.noValidate = true;
    form.setAttribute("aria-label", "Edit rule");
    const text = el("textarea");
    text.rows = 3;
    text.value = rule.text;
    const reason = el("input");
    reason.value = rule.reason || "";
    const error = el("p", "error small");
    error.setAttribute("role", "alert");
    const row = el("div", "dialog-buttons");
    const cancel = button("btn small", "Cancel");
    const save = el("button", "btn small primary", "Save");
    save.type = "submit";
    row.append(cancel, save);
    form.append(countedField("Rule", text, TEXT_MAX), countedField("Reason", reason, REASON_MAX), error, row);
    li.append(form);
    cancel.addEventListener("click", () => this.cancelEdit());
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        this.cancelEdit();
      } else if (ev.key === "Enter" && ev.target === text && !ev.shiftKey) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const patch = {};
      if (text.value.trim() !== rule.text) patch.text = text.value.trim();
      if (reason.value.trim() !== (rule.reason || "")) patch.reason = reason.value.trim();
      if (!Object.keys(patch).length) return this.cancelEdit();
      if (patch.text === "") {
        error.textContent = "A rule needs text; delete it instead.";
        return;
      }
      save.disabled = true;
      try {
        const updated = await rulesApi.update(id, patch);
        this.editing = null;
        this.upsert(updated);
        this.focusCard(id);
        this.say("Rule saved.");
      } catch (err) {
        error.textContent = err.message;
      } finally {
        save.disabled = false;
      }
    });
    this.editing = id;
    this.editNode = li;
    this.render();
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  }

  cancelEdit(refocus = true) {
    const id = this.editing;
    if (id == null) return;
    this.editing = null;
    this.editNode = null;
    this.render();
    if (refocus) this.focusCard(id);
  }

  // -- drag and drop (within a group; wired by wireDrag in build) ------------------------------------
  /** Where a dragged rule would land: only inside its own group. */
  dropTarget(ev) {
    const rule = this.rules.get(this.dragId);
    const section = ev.target.closest?.(".rule-group");
    if (!rule || !section || section.dataset.status !== rule.status) return null;
    return dropSpot(this.groupEls[rule.status].list, ".rule-card", ev.clientY);
  }

  // -- rule_proposal cards in the timeline --------------------------------------------------------
  /** The body of a `rule_proposal` message: the rule, why, and the decision (or its outcome). */
  renderProposal(msg) {
    const meta = msg.metadata || {};
    const status = ["active", "draft", "dismissed"].includes(meta.status) ? meta.status : "proposed";
    const text = meta.text || String(msg.text || "").replace(/^Proposed rule:\s*/i, "");
    const card = el("div", `proposal-card rule-proposal ${status}`);
    const head = el("div", "proposal-head");
    head.append(pathIcon(SHAPES.rules, 16), el("strong", "proposal-title", text));
    card.append(head);
    if (meta.reason) card.append(el("p", "proposal-body rule-why", `Why: ${meta.reason}`));
    const foot = el("div", "proposal-foot");
    if (status !== "proposed") {
      const by = meta.decided_by || "";
      const done = { active: "activated it", draft: "added it to drafts", dismissed: "dismissed it" }[status];
      const outcome = el("span", `outcome rule-outcome ${status}`, by ? `${by} ${done}` : done.charAt(0).toUpperCase() + done.slice(1));
      if (status === "active") foot.append(icon("check", 16));
      foot.append(outcome);
    } else if (meta.rule_id != null) {
      foot.setAttribute("role", "group");
      foot.setAttribute("aria-label", `Rule proposal: ${snippet(text, 60)}`);
      const all = [];
      const decide = (decision, label, cls) => {
        const b = button(`btn small ${cls}`.trim(), label);
        b.addEventListener("click", async () => {
          if (all.some((x) => x.dataset.busy)) return;
          if (decision === "activate" && this.limitBlocked()) return;
          all.forEach((x) => (x.dataset.busy = "1"));
          try {
            const result = await rulesApi.decide(meta.rule_id, decision);
            if (decision === "dismiss") this.removeLocal(meta.rule_id);
            else if (result?.status) this.upsert(result);
          } catch (err) {
            toast(`Could not decide: ${err.message}`);
          }
          // Show the card as the server has it now (ours, or the first answer when we were late).
          const fresh = await api.message(msg.id).catch(() => null);
          if (fresh) this.app.timeline.update(fresh);
          all.forEach((x) => delete x.dataset.busy);
        });
        all.push(b);
        return b;
      };
      const activate = decide("activate", "Activate", "primary");
      activate.dataset.activate = "";
      foot.append(activate, decide("draft", "Add to drafts"), decide("dismiss", "Dismiss"));
      if (this.atLimit()) this.markActivatesIn(foot);
    }
    card.append(foot);
    return card;
  }
}
Object.assign(Rules.prototype, panelMethods);
