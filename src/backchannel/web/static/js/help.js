// Help: the "?" button opens a short tour of the room in a few screens (mentions and pins, jobs,
// rules, sessions, schedules). It opens by itself on this browser's first
// visit, once (bc.helpSeen).
// A modal <dialog>: focus stays inside, Escape closes it, Left/Right (or the step buttons) move.
import { $, el, store } from "./dom.js";
import { icon, pathIcon } from "./icons.js";

const SCREENS = [
  {
    id: "mentions",
    title: "Mention an agent to wake it",
    lead: "Agents sleep until someone mentions them. Type @ in the message box to pick one.",
    points: [
      ["@claude", "wakes that agent; it reads the channel and answers here."],
      ["@all", "wakes every online agent."],
      ["Reply", "on an agent's message starts your answer with its @name, so it wakes."],
      ["/", "opens the commands: /continue after the loop guard paused agents, /summary @agent, /clear."],
      ["Pins", "keep messages at hand: pin one from its toolbar and find it under Pins (top right)."],
    ],
  },
  {
    id: "jobs",
    title: "Jobs turn talk into tracked work",
    lead: "A job has a title, a brief, an assignee and a thread of its own, out of the channel.",
    points: [
      ["Jobs", "(top right) opens the board: To do, Active, Closed. Drag cards or use Alt+arrows."],
      ["Proposals", "from agents appear as cards: Accept, Request changes or Dismiss."],
      ["Convert to job", "on any message asks an agent to propose one."],
    ],
  },
  {
    id: "rules",
    title: "Rules every agent follows",
    lead: "Standing instructions for the whole room (or one channel), at most 10 active.",
    points: [
      ["Rules", "(top right) lists them: write, reorder, draft, activate or archive."],
      ["Delivery", "active rules ride along in an agent's next wake-up after a change, and every few wake-ups."],
      ["Proposals", "an agent can propose a rule; you Activate it, keep it as a draft, or Dismiss it."],
    ],
  },
  {
    id: "sessions",
    title: "Sessions: agents take turns",
    lead: "A session runs a workflow in one channel: roles, phases and a goal (a code review, a debate, a plan).",
    points: [
      ["Start", "with the play button next to the channel's name (on a phone: under \u201c\u2026\u201d): a template, a goal, a cast."],
      ["Cast", "each role gets an agent (or you); the one whose turn it is gets woken with the phase prompt."],
      ["You", "can speak at any time: speaking on an agent's turn pauses the session until it answers."],
      ["Output", "the last phase's message is marked as the session's result."],
    ],
  },
  {
    id: "schedules",
    title: "Schedules post prompts later",
    lead: "Ask agents something once at a time, or again and again: every 30 minutes, daily at 09:00.",
    points: [
      ["Clock", "next to Send schedules the message you typed: in 10 minutes, at a time, or on a repeat."],
      ["Targets", "the agents a scheduled prompt mentions; it is posted under your name."],
      ["Strip", "above the message box lists this channel's schedules: pause, resume, edit or delete them."],
      ["Agents", "can schedule reminders for themselves too (\u201ccheck CI in 10 minutes\u201d)."],
    ],
  },
];
// Screens about features that are not built yet: the tour leaves them out so nobody looks for
// controls that do not exist. Remove an id when it lands.
const NOT_YET = new Set([]);
const TOUR = SCREENS.filter((s) => !NOT_YET.has(s.id));

const QUESTION = ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M9.6 9.2a2.5 2.5 0 1 1 3.4 2.3c-.6.3-1 .8-1 1.5v.6", "M12 17h.01"];


function button(className, text, label) {
  const b = el("button", className, text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  return b;
}

export class Help {
  constructor() {
    this.step = 0;
    this.toggle = $("help-toggle");
    this.toggle.append(pathIcon(QUESTION, 18));
    this.toggle.addEventListener("click", () => this.open());
    this.build();
  }

  build() {
    const dialog = el("dialog", "help-dialog");
    dialog.id = "help-dialog";
    dialog.setAttribute("aria-labelledby", "help-title");
    dialog.setAttribute("aria-describedby", "help-lead");
    const top = el("div", "help-top");
    this.counter = el("span", "help-step small muted");
    this.counter.setAttribute("aria-live", "polite");
    const close = button("icon-btn", null, "Close help");
    close.append(icon("x"));
    close.addEventListener("click", () => this.close());
    top.append(this.counter, close);
    this.titleEl = el("h2", "help-title");
    this.titleEl.id = "help-title";
    this.lead = el("p", "help-lead");
    this.lead.id = "help-lead";
    this.points = el("dl", "help-points");
    const nav = el("div", "help-nav");
    this.back = button("btn", "Back");
    this.back.addEventListener("click", () => this.show(this.step - 1));
    this.dots = el("div", "help-dots");
    this.dots.setAttribute("role", "group");
    this.dots.setAttribute("aria-label", "Help topics");
    TOUR.forEach((s, i) => {
      const dot = button("help-dot", null, `${i + 1}: ${s.title}`);
      dot.title = s.title;
      dot.addEventListener("click", () => this.show(i));
      this.dots.append(dot);
    });
    this.next = button("btn primary", "Next");
    this.next.addEventListener("click", () => (this.step < TOUR.length - 1 ? this.show(this.step + 1) : this.close()));
    nav.append(this.back, this.dots, this.next);
    dialog.append(top, this.titleEl, this.lead, this.points, nav);
    // Escape is the dialog's own cancel; every way out counts as having seen the tour.
    dialog.addEventListener("close", () => {
      store.set("helpSeen", true);
      this.toggle.setAttribute("aria-expanded", "false");
    });
    dialog.addEventListener("keydown", (ev) => {
      if (ev.target.closest?.("input, textarea, select")) return;
      if (ev.key === "ArrowRight" && this.step < TOUR.length - 1) this.show(this.step + 1);
      else if (ev.key === "ArrowLeft" && this.step > 0) this.show(this.step - 1);
      else return;
      ev.preventDefault();
    });
    this.dialog = dialog;
    this.toggle.setAttribute("aria-controls", dialog.id);
    this.toggle.setAttribute("aria-expanded", "false");
    document.body.append(dialog);
  }

  /** The first visit of this browser: show the tour once, unless another dialog is asking something. */
  maybeFirstVisit() {
    if (store.get("helpSeen", false)) return;
    setTimeout(() => {
      if (store.get("helpSeen", false) || document.querySelector("dialog[open]")) return;
      this.open();
    }, 400);
  }

  open(step = 0) {
    if (!this.dialog.open) this.dialog.showModal();
    this.toggle.setAttribute("aria-expanded", "true");
    this.show(step);
    this.next.focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
    this.toggle.focus();
  }

  show(step) {
    this.step = Math.max(0, Math.min(TOUR.length - 1, step));
    const screen = TOUR[this.step];
    this.dialog.dataset.screen = screen.id;
    this.counter.textContent = `${this.step + 1} of ${TOUR.length}`;
    this.titleEl.textContent = screen.title;
    this.lead.textContent = screen.lead;
    this.points.replaceChildren();
    for (const [term, text] of screen.points) {
      const row = el("div", "help-point");
      row.append(el("dt", null, term), el("dd", null, text));
      this.points.append(row);
    }
    this.back.disabled = this.step === 0;
    this.next.textContent = this.step === TOUR.length - 1 ? "Done" : "Next";
    [...this.dots.children].forEach((dot, i) => {
      if (i === this.step) dot.setAttribute("aria-current", "step");
      else dot.removeAttribute("aria-current");
    });
    // Back just became disabled under the focus: Next keeps it inside the dialog.
    const lost = document.activeElement === this.back || !this.dialog.contains(document.activeElement);
    if (this.back.disabled && lost && this.dialog.open) this.next.focus();
  }
}
