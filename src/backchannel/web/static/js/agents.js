// An agent's settings for people: role, colour, label, hat, forget. One popover serves the roster's
// "…" button and the role pill / name on an agent's messages; every change goes through the server
// (PATCH /api/agents/{name} and friends) and reaches every page as a `presence` event.
import { api, request } from "./api.js";
import { avatar, colorFor, el, openDialog, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";
import { stateText } from "./composer.js";

/** Readable as an avatar behind white text and, mixed with the text colour, as a name. */
export const PALETTE = [
  ["#1d4ed8", "blue"],
  ["#6d28d9", "violet"],
  ["#a21caf", "magenta"],
  ["#be185d", "pink"],
  ["#b91c1c", "red"],
  ["#c2410c", "orange"],
  ["#a16207", "ochre"],
  ["#4d7c0f", "olive"],
  ["#15803d", "green"],
  ["#0f766e", "teal"],
  ["#0e7490", "cyan"],
  ["#475569", "slate"],
];
// Used only until GET /api/settings answers (or on a server without it).
const PRESETS = ["builder", "reviewer", "planner", "tester", "researcher", "designer", "writer", "debugger", "architect", "critic"];
const ROLE_MAX = 20;
export const LABEL_MAX = 24; // the server's limit (agent_settings.LABEL_MAX); app.js's rename dialog uses it too
const RULES = {
  true: ["rules-fresh", "has the current rules"],
  false: ["rules-stale", "gets the rules with its next wake-up"],
};
const enc = encodeURIComponent;
const calls = {
  settings: () => request("GET", "/api/settings"),
  removeHat: (name) => request("DELETE", `/api/agents/${enc(name)}/hat`),
  forget: (name) => request("POST", `/api/agents/${enc(name)}/forget`),
};

const moreIcon = () => pathIcon(["M5 12h.01", "M12 12h.01", "M19 12h.01"], 16);
const clockIcon = () => pathIcon(["M12 20a8 8 0 1 0 0-16 8 8 0 0 0 0 16z", "M12 8v4l3 2"], 12);

/** The small role pill (display only, e.g. in the roster). */
export function rolePill(agent) {
  const pill = el("span", "role-pill", agent.role);
  pill.title = `Role: ${agent.role}`;
  pill.style.setProperty("--c", colorFor(agent.name, agent));
  return pill;
}

/** "rules" with a check (has the current rules) or a clock (gets them with its next wake-up). */
export function rulesMark(agent) {
  if (typeof agent.rules_fresh !== "boolean") return null; // a server without rules delivery
  const [cls, says] = RULES[agent.rules_fresh];
  const mark = el("span", `rules-mark ${cls}`);
  mark.append(agent.rules_fresh ? icon("check", 12) : clockIcon(), "rules");
  mark.title = `${agent.label || agent.name} ${says}`;
  mark.setAttribute("aria-label", `Rules: ${says}`);
  return mark;
}

/** What the roster's main button reads out about role and rules (its aria-label hides the children). */
export function rosterWords(agent) {
  const words = [];
  if (agent.role) words.push(`role ${agent.role}`);
  if (typeof agent.rules_fresh === "boolean") words.push(RULES[agent.rules_fresh][1]);
  return words.length ? `, ${words.join(", ")}` : "";
}

export class Agents {
  constructor(app) {
    this.app = app;
    this.name = null; // the agent whose popover is open
    this.returnFocus = null; // () => element to focus when it closes
    this.settings = null; // GET /api/settings, fetched on each open
    this.dialog = el("dialog", "agent-menu");
    this.dialog.setAttribute("aria-labelledby", "agent-menu-title");
    this.dialog.addEventListener("cancel", (ev) => {
      ev.preventDefault(); // Escape: close our way, so the focus goes back where it came from
      this.close();
    });
    this.dialog.addEventListener("close", () => {
      if (!this.dialog.open) this.close(); // closed by the browser itself (not reopened since)
    });
    this.dialog.addEventListener("keydown", (ev) => this.onKey(ev));
    this.dialog.addEventListener("click", (ev) => {
      if (ev.target !== this.dialog) return;
      // The backdrop's clicks land on the dialog too: close only for one outside its box.
      const r = this.dialog.getBoundingClientRect();
      const inside = ev.clientX >= r.left && ev.clientX <= r.right && ev.clientY >= r.top && ev.clientY <= r.bottom;
      if (!inside && ev.detail > 0) this.close();
    });
    document.body.append(this.dialog);
  }

  // -- pieces for the roster and the timeline ---------------------------------------------------
  /** The roster's "…" button that opens this agent's settings. */
  menuButton(agent) {
    const btn = el("button", "icon-btn small agent-settings");
    btn.type = "button";
    btn.setAttribute("aria-label", `Settings for ${agent.name}`);
    btn.setAttribute("aria-haspopup", "dialog");
    btn.setAttribute("aria-expanded", String(this.name === agent.name));
    btn.title = "Role, colour, label…";
    btn.append(moreIcon());
    btn.addEventListener("click", () =>
      this.open(agent.name, btn, () => rosterButton(agent.name)),
    );
    return btn;
  }

  /**
   * The sender of an agent's message, and its role pill: both open the role picker. They stay out of
   * the Tab order (Tab from a focused message reaches its own controls first); the roster's "…" is
   * the keyboard way to the same picker.
   */
  senderParts(msg, agent) {
    const who = el("button", "sender sender-btn", msg.sender);
    who.type = "button";
    who.tabIndex = -1;
    who.setAttribute("aria-haspopup", "dialog");
    who.title = `${agent.label && agent.label.toLowerCase() !== msg.sender ? `${agent.label} · ` : ""}set role and colour`;
    const parts = [who];
    if (agent.role) {
      const pill = el("button", "role-pill", agent.role);
      pill.type = "button";
      pill.tabIndex = -1;
      pill.setAttribute("aria-haspopup", "dialog");
      pill.setAttribute("aria-label", `Role ${agent.role}: change ${msg.sender}'s role`);
      pill.title = "Change role";
      pill.style.setProperty("--c", colorFor(agent.name, agent));
      parts.push(pill);
    }
    for (const part of parts) {
      part.addEventListener("click", (ev) => {
        ev.stopPropagation();
        const kind = part.classList.contains("role-pill") ? ".role-pill" : ".sender-btn";
        this.open(msg.sender, part, () => inMessage(msg.id, kind));
      });
    }
    return parts;
  }

  // -- live ---------------------------------------------------------------------------------------
  /** A presence event was applied: messages follow role, colour, label and hat; so does the popover. */
  onPresence(before, agent) {
    const keys = ["role", "color", "label", "hat"];
    if (!before || keys.some((k) => (before[k] ?? "") !== (agent[k] ?? ""))) this.app.timeline.refreshAll();
    if (agent.name === this.name) this.render();
  }

  /** `agent_forgotten`: the roster already dropped it; its messages lose the live pill and colour. */
  onForgotten(name) {
    this.app.timeline.refreshAll();
    if (name !== this.name) return;
    this.close(() => document.querySelector("#roster .agent-main") || document.getElementById("agents-heading"));
  }

  /** A `settings` event: saved custom roles changed (here, on another page, or by the settings panel). */
  onSettings(settings) {
    if (!settings || typeof settings !== "object") return;
    this.settings = { ...this.settings, ...settings };
    if (this.dialog.open) this.render();
  }

  // -- the popover --------------------------------------------------------------------------------
  async open(name, anchor, returnFocus) {
    if (!this.app.agent(name)) return;
    this.close(null);
    this.name = name;
    this.returnFocus = returnFocus;
    this.error = "";
    this.build();
    this.place(anchor);
    this.dialog.showModal();
    this.setExpanded(true);
    this.focusStart();
    await this.loadSettings();
  }

  async loadSettings() {
    try {
      this.settings = await calls.settings();
    } catch {
      this.settings = null; // an older server: presets only
    }
    if (this.dialog.open) this.render();
  }

  close(focus) {
    if (this.name == null) return;
    if (this.dialog.open) this.dialog.close();
    this.setExpanded(false);
    const target = (focus === undefined ? this.returnFocus : focus)?.();
    this.name = null;
    this.dialog.replaceChildren();
    target?.focus({ preventScroll: true });
  }

  setExpanded(open) {
    const btn = rosterButton(this.name);
    btn?.setAttribute("aria-expanded", String(open));
  }

  /** Next to the anchor on wide screens; a bottom sheet on phones (CSS). */
  place(anchor) {
    const box = anchor?.getBoundingClientRect();
    const width = Math.min(340, window.innerWidth - 16);
    let left = 8;
    let top = 8;
    if (box) {
      const inRoster = anchor.closest("#roster");
      left = inRoster ? box.right + 8 : box.left;
      top = inRoster ? box.top - 8 : box.bottom + 6;
      if (left + width > window.innerWidth - 8) left = Math.max(8, window.innerWidth - width - 8);
    }
    this.dialog.style.setProperty("--am-left", `${Math.round(left)}px`);
    this.dialog.style.setProperty("--am-top", `${Math.round(Math.max(8, top))}px`);
    // Keep it on screen once its height is known: above a message's pill when there is no room below.
    requestAnimationFrame(() => {
      if (!this.dialog.open) return;
      const h = this.dialog.getBoundingClientRect().height;
      const maxTop = Math.max(8, window.innerHeight - h - 8);
      if (top <= maxTop) return;
      const above = box && !anchor.closest("#roster") ? box.top - h - 6 : -1;
      this.dialog.style.setProperty("--am-top", `${Math.round(above >= 8 ? above : maxTop)}px`);
    });
  }

  focusStart() {
    const target =
      this.dialog.querySelector('.am-roles [aria-pressed="true"]') || this.dialog.querySelector(".am-roles button");
    target?.focus();
  }

  /** Tab stays inside; arrows move within a group of chips or swatches (roving focus). */
  onKey(ev) {
    if (ev.key === "Tab") {
      const items = focusables(this.dialog);
      if (!items.length) return;
      const first = items[0];
      const last = items.at(-1);
      if (ev.shiftKey && document.activeElement === first) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && document.activeElement === last) {
        ev.preventDefault();
        first.focus();
      }
      return;
    }
    const group = ev.target.closest?.("[data-roving]");
    if (!group || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(ev.key)) return;
    const items = [...group.querySelectorAll("button")];
    let i = items.indexOf(ev.target);
    if (i < 0) return;
    ev.preventDefault();
    if (ev.key === "Home") i = 0;
    else if (ev.key === "End") i = items.length - 1;
    else i = (i + (ev.key === "ArrowLeft" || ev.key === "ArrowUp" ? -1 : 1) + items.length) % items.length;
    for (const item of items) item.tabIndex = -1;
    items[i].tabIndex = 0;
    items[i].focus();
  }

  /** The parts that stay while it is open (the two small forms keep what someone is typing). */
  build() {
    const d = this.dialog;
    d.replaceChildren();
    this.head = el("div", "am-head");
    this.roles = el("section", "am-section");
    this.customForm = this.makeCustomForm();
    this.colors = el("section", "am-section");
    this.labelForm = this.makeLabelForm();
    this.actions = el("div", "am-actions");
    this.errorLine = el("p", "error small am-error");
    this.errorLine.setAttribute("role", "alert");
    const rolesBox = el("div", "am-roles-box");
    rolesBox.append(this.roles, this.customForm);
    d.append(this.head, rolesBox, this.colors, this.labelForm, this.actions, this.errorLine);
    this.render();
  }

  /** Redraw from the current agent, keeping the focused control. */
  render() {
    const agent = this.app.agent(this.name);
    if (!agent) return this.close(() => document.getElementById("agents-heading"));
    if (!this.head) return;
    const focused = document.activeElement?.closest?.(".agent-menu [data-key]")?.dataset.key;
    this.renderHead(agent);
    this.renderRoles(agent);
    this.renderColors(agent);
    this.renderActions(agent);
    const label = this.labelForm.querySelector("input");
    if (document.activeElement !== label && !label.dataset.dirty) label.value = agent.label || "";
    this.errorLine.textContent = this.error || "";
    if (focused) this.dialog.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
  }

  renderHead(agent) {
    const face = avatar(agent.name, agent);
    const text = el("div", "am-title");
    const title = el("h2", null, agent.label || agent.name);
    title.id = "agent-menu-title";
    const sub = el("span", "am-sub", `@${agent.name} · ${stateText(agent.state)}`);
    text.append(title, sub);
    const close = el("button", "icon-btn small am-close");
    close.type = "button";
    close.dataset.key = "close";
    close.setAttribute("aria-label", "Close");
    close.title = "Close (Esc)";
    close.append(icon("x", 16));
    close.addEventListener("click", () => this.close());
    this.head.replaceChildren(face, text, close);
    this.dialog.style.setProperty("--c", colorFor(agent.name, agent));
  }

  renderRoles(agent) {
    const head = el("div", "am-section-head");
    const h = el("h3", null, "Role");
    h.id = "am-role-heading";
    head.append(h);
    if (agent.role) {
      const clear = el("button", "link-btn", "Clear role");
      clear.type = "button";
      clear.dataset.key = "clear-role";
      clear.addEventListener("click", () => this.patch({ role: "" }, "clear-role"));
      head.append(clear);
    }
    const presets = Array.isArray(this.settings?.preset_roles) ? this.settings.preset_roles : PRESETS;
    const custom = Array.isArray(this.settings?.custom_roles) ? this.settings.custom_roles : [];
    const roles = [...presets.map((r) => [r, false]), ...custom.filter((r) => !presets.includes(r)).map((r) => [r, true])];
    if (agent.role && !roles.some(([r]) => r === agent.role)) roles.push([agent.role, true]);
    const group = el("div", "am-chips am-roles");
    group.setAttribute("role", "group");
    group.setAttribute("aria-labelledby", "am-role-heading");
    group.dataset.roving = "";
    for (const [role, saved] of roles) {
      const on = role === agent.role;
      const chip = el("button", `chip${saved ? " custom" : ""}`);
      chip.type = "button";
      chip.dataset.key = `role:${role}`;
      chip.setAttribute("aria-pressed", String(on));
      if (on) chip.append(icon("check", 12));
      chip.append(role);
      if (saved) chip.title = "A saved custom role";
      chip.addEventListener("click", () => {
        if (!on) this.patch({ role }, `role:${role}`);
      });
      group.append(chip);
    }
    rove(group);
    this.roles.replaceChildren(head, group);
  }

  makeCustomForm() {
    const form = el("form", "am-inline");
    const label = el("label", "sr-only", "Custom role");
    const input = el("input");
    input.id = "am-custom-role";
    label.htmlFor = input.id;
    input.maxLength = ROLE_MAX;
    input.placeholder = "Custom role…";
    input.autocomplete = "off";
    input.dataset.key = "custom-role";
    const set = el("button", "btn small", "Set");
    set.type = "submit";
    set.dataset.key = "custom-set";
    set.setAttribute("aria-label", "Set custom role");
    form.append(label, input, set);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const role = input.value.trim();
      if (!role) return this.fail("Type a role first.");
      if (role.length > ROLE_MAX) return this.fail(`A role is at most ${ROLE_MAX} characters.`);
      if (await this.patch({ role }, `role:${role}`)) {
        input.value = "";
        await this.loadSettings(); // a new role is saved for everyone: offer it from now on
        this.dialog.querySelector(`[data-key="${CSS.escape(`role:${role}`)}"]`)?.focus();
      }
    });
    return form;
  }

  renderColors(agent) {
    const head = el("div", "am-section-head");
    const h = el("h3", null, "Colour");
    h.id = "am-color-heading";
    const reset = el("button", "link-btn", "Default");
    reset.type = "button";
    reset.dataset.key = "color-reset";
    reset.setAttribute("aria-label", "Default colour");
    reset.title = "Back to the configured or built-in colour";
    reset.addEventListener("click", () => this.patch({ color: "" }, "color-reset"));
    head.append(h, reset);
    const group = el("div", "am-swatches");
    group.setAttribute("role", "group");
    group.setAttribute("aria-labelledby", "am-color-heading");
    group.dataset.roving = "";
    const current = (agent.color || "").toLowerCase();
    for (const [hex, name] of PALETTE) {
      const on = hex === current;
      const sw = el("button", "swatch");
      sw.type = "button";
      sw.dataset.key = `color:${hex}`;
      sw.setAttribute("aria-label", `Colour ${name}`);
      sw.setAttribute("aria-pressed", String(on));
      sw.title = name;
      sw.style.setProperty("--sw", hex);
      if (on) sw.append(icon("check", 14));
      sw.addEventListener("click", () => {
        if (!on) this.patch({ color: hex }, `color:${hex}`);
      });
      group.append(sw);
    }
    rove(group);
    this.colors.replaceChildren(head, group);
  }

  makeLabelForm() {
    const form = el("form", "am-section am-inline am-label");
    const label = el("label", "am-field-label", "Label");
    const input = el("input");
    input.id = "am-label";
    label.htmlFor = input.id;
    input.maxLength = LABEL_MAX;
    input.autocomplete = "off";
    input.dataset.key = "label";
    input.addEventListener("input", () => (input.dataset.dirty = "1"));
    const save = el("button", "btn small", "Save");
    save.type = "submit";
    save.dataset.key = "label-save";
    save.setAttribute("aria-label", "Save label");
    form.append(label, input, save);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return this.fail("Type a label first.");
      if (await this.patch({ label: value }, "label")) delete input.dataset.dirty;
    });
    return form;
  }

  renderActions(agent) {
    const buttons = [];
    const add = (key, text, fn, extra = "") => {
      const b = el("button", `btn small ${extra}`, text);
      b.type = "button";
      b.dataset.key = key;
      b.addEventListener("click", fn);
      buttons.push(b);
    };
    add("rename", "Rename…", () => {
      const name = this.name;
      this.close(null);
      this.app.renameAgent(this.app.agent(name)).then((renamed) => rosterButton(renamed?.name || name)?.focus());
    });
    if (agent.hat) add("hat", "Remove hat", () => this.removeHat());
    if (agent.state === "offline") add("forget", "Forget agent…", () => this.forget(), "danger-text");
    this.actions.replaceChildren(...buttons);
  }

  // -- changes ------------------------------------------------------------------------------------
  fail(message) {
    this.error = message;
    this.errorLine.textContent = message;
    return false;
  }

  /** PATCH the agent; the page shows the answer at once (the presence event says the same). */
  async patch(values, focusKey) {
    const name = this.name;
    this.error = "";
    try {
      const updated = await api.updateAgent(name, values);
      this.apply(name, updated);
      if (focusKey) this.dialog.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
      return true;
    } catch (err) {
      return this.fail(err.message || String(err));
    }
  }

  apply(name, updated) {
    if (!updated || !this.app.agents.has(name)) return;
    const before = this.app.agents.get(name);
    this.app.agents.set(name, { ...before, ...updated });
    this.app.renderRoster();
    this.onPresence(before, this.app.agents.get(name));
  }

  async removeHat() {
    const name = this.name;
    try {
      this.apply(name, await calls.removeHat(name));
      this.dialog.querySelector('[data-key="rename"]')?.focus();
    } catch (err) {
      this.fail(err.message || String(err));
    }
  }

  async forget() {
    const name = this.name;
    const done = await openDialog({
      title: `Forget ${name}?`,
      text: `${name} leaves the roster and its token stops working. Its messages stay. If it registers again, it comes back as a new agent.`,
      ok: "Forget agent",
      danger: true,
      submit: async () => {
        await calls.forget(name);
        return true;
      },
    });
    if (done) {
      this.app.forgetAgent(name);
      toast(`${name} was forgotten; its messages stay.`);
    } else if (this.dialog.open) {
      this.dialog.querySelector('[data-key="forget"]')?.focus();
    }
  }
}

/** The roster "…" button of `name` (the roster re-renders often: look it up when needed). */
function rosterButton(name) {
  if (!name) return null;
  return document.querySelector(`#roster [data-agent="${CSS.escape(name)}"] .agent-settings`);
}

/** The pill or name that opened it, on the (maybe re-rendered) message; else the message. */
function inMessage(id, selector) {
  const node = document.getElementById(`m-${id}`);
  return node?.querySelector(selector) || node?.querySelector(".sender-btn") || node;
}

function focusables(root) {
  return [...root.querySelectorAll("button, input, [tabindex]")].filter(
    (n) => !n.disabled && n.tabIndex >= 0 && n.getClientRects().length,
  );
}

/** One Tab stop per group: the pressed item (or the first); arrows move inside. */
function rove(group) {
  const items = [...group.querySelectorAll("button")];
  const current = items.find((b) => b.getAttribute("aria-pressed") === "true") || items[0];
  for (const item of items) item.tabIndex = item === current ? 0 : -1;
}
