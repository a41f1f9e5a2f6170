// Ordered groups, what the jobs board and the rules panel share: items kept by id, each in a group
// (its `status`) at a place (`pos`), reordered by drag and drop or Alt+ArrowUp/Down, with the list
// loaded from the server while live events keep coming, and moves said to screen readers.
import { ApiError } from "./api.js";
import { el, toast } from "./dom.js";

/** id -> item with `status` and `pos`; the order is local, set from the server's list and events. */
export class OrderedGroups extends Map {
  /** From the server's list, which comes in display order: places count up within each group. */
  static fromList(list) {
    const groups = new OrderedGroups();
    const counters = {};
    for (const item of list) {
      counters[item.status] = (counters[item.status] ?? 0) + 1;
      groups.set(item.id, { ...item, pos: counters[item.status] });
    }
    return groups;
  }

  lastPos(status) {
    let max = 0;
    for (const item of this.values()) if (item.status === status && item.pos > max) max = item.pos;
    return max;
  }

  ordered(status) {
    return [...this.values()].filter((x) => x.status === status).sort((a, b) => a.pos - b.pos || a.id - b.id);
  }

  /** `ids` first in that order, then the rest of the group as they were. */
  applyOrder(status, ids) {
    const listed = new Set(ids);
    const rest = this.ordered(status).filter((x) => !listed.has(x.id));
    let pos = 0;
    for (const id of ids) {
      const item = this.get(id);
      if (item && item.status === status) item.pos = ++pos;
    }
    for (const item of rest) item.pos = ++pos;
  }

  /** The place of `item`, a fresh copy from the server: ours, unless it is new or changed group (then last). */
  posFor(item) {
    const known = this.get(item.id);
    return !known || known.status !== item.status ? this.lastPos(item.status) + 1 : known.pos;
  }

  /**
   * Group `status`'s ids with item `id` put at `index` (clamped): `at` is where it landed, `same`
   * whether the order (taken as that group's) did not change.
   */
  placed(id, status, index) {
    const before = this.ordered(status).map((x) => x.id);
    const ids = before.filter((x) => x !== id);
    const at = Math.max(0, Math.min(index, ids.length));
    ids.splice(at, 0, id);
    return { ids, at, same: ids.every((x, i) => x === before[i]) };
  }

  /** Alt+ArrowUp/Down on item `id`: the index it moves to in its group, or -1 at either end. */
  stepTo(id, key) {
    const item = this.get(id);
    const ids = item ? this.ordered(item.status).map((x) => x.id) : [];
    const to = ids.indexOf(id) + (key === "ArrowUp" ? -1 : 1);
    return to >= 0 && to < ids.length ? to : -1;
  }
}

/** Plain ArrowUp/Down on a card: focus the previous or next of `controls` (the cards' buttons, in order). */
export function focusStep(controls, current, key) {
  controls[controls.indexOf(current) + (key === "ArrowUp" ? -1 : 1)]?.focus();
}

/**
 * Load the full list with `load()` while live events keep coming. Events that arrive meanwhile may
 * be newer than the list: `onEvent` collects them in `owner.late`, and they come back as `late`, to
 * be applied again after it. Null when the load failed (said in a toast, but for a 404: an older
 * server without this feature).
 */
export async function loadWithLate(owner, load, what) {
  const late = (owner.late = []);
  try {
    return { result: await load(), late };
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) toast(`Could not load ${what}: ${err.message}`);
    return null;
  } finally {
    if (owner.late === late) owner.late = null;
  }
}

/** Where a drop at height `y` lands in `list`: before the first card whose middle is below it, or last. */
export function dropSpot(list, cardSelector, y) {
  const cards = [...list.querySelectorAll(`${cardSelector}:not(.dragging)`)];
  for (let i = 0; i < cards.length; i += 1) {
    const r = cards[i].getBoundingClientRect();
    if (y < r.top + r.height / 2) return { index: i, before: cards[i], list };
  }
  return { index: cards.length, list };
}

/**
 * Drag and drop of the cards (`card`, a selector; `data-id` their id) inside `root`. While a drag
 * lasts `owner.dragId` is the card's id. `where(ev)` says where a drop would land (null: not
 * there), `show(target)` marks it, `drop(id, target)` moves the item; `marks` are the classes a drag
 * leaves on nodes, all removed when it ends.
 */
export function wireDrag(owner, root, { card, name, where, show, drop, marks, canStart = () => true, onStart = () => {}, onEnd = () => {} }) {
  const end = () => {
    owner.dragId = null;
    onEnd();
    for (const n of root.querySelectorAll(marks.map((m) => `.${m}`).join(", "))) n.classList.remove(...marks);
  };
  root.addEventListener("dragstart", (ev) => {
    const node = ev.target.closest?.(card);
    if (!node || !canStart(node)) return;
    onStart(node);
    owner.dragId = Number(node.dataset.id);
    ev.dataTransfer.effectAllowed = "move";
    ev.dataTransfer.setData("text/plain", `${name} #${owner.dragId}`);
    node.classList.add("dragging");
  });
  root.addEventListener("dragend", end);
  root.addEventListener("dragover", (ev) => {
    if (owner.dragId == null) return;
    const target = where(ev);
    if (!target) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "move";
    show(target);
  });
  root.addEventListener("drop", (ev) => {
    if (owner.dragId == null) return;
    const target = where(ev);
    const id = owner.dragId;
    end();
    if (!target) return;
    ev.preventDefault();
    drop(id, target);
  });
}

/** "Alt+↑↓" for a panel's hint: the keys that move a card, as <kbd>s. */
export function altKeys(...arrows) {
  return [el("kbd", null, "Alt"), "+", ...arrows.map((a) => el("kbd", null, a))];
}

/** A polite live region for `say` (panelMethods). */
export function liveRegion() {
  const node = el("p", "sr-only");
  node.setAttribute("aria-live", "polite");
  return node;
}

/**
 * What both panels do alike, mixed into their classes with Object.assign(Cls.prototype, ...): they
 * have `panel`, `announcer` (a liveRegion), `createForm`, its `newBtn` and `createFields.error`.
 */
export const panelMethods = {
  isOpen() {
    return !this.panel.hidden;
  },

  /** Tell screen readers (read again even when the text repeats). */
  say(text) {
    this.announcer.textContent = "";
    requestAnimationFrame(() => (this.announcer.textContent = text));
  },

  /** Show the create form, its error cleared, with `field` focused. */
  openCreate(field) {
    this.createForm.hidden = false;
    this.newBtn.setAttribute("aria-expanded", "true");
    this.createFields.error.textContent = "";
    field.focus();
  },

  hideCreate(refocus = true) {
    if (this.createForm.hidden) return;
    this.createForm.hidden = true;
    this.newBtn.setAttribute("aria-expanded", "false");
    if (refocus) this.newBtn.focus();
  },
};

/**
 * One group of a panel: `<section class="{kind}-group status-{status}">`, its heading (a toggle
 * button when `onToggle` is given: the group can collapse) with the name and a count, and its list,
 * labelled by the heading. Nothing is appended to the section: the caller orders its parts.
 */
export function groupSection(kind, status, name, onToggle = null) {
  const section = el("section", `${kind}-group status-${status}`);
  section.dataset.status = status;
  const head = el("h3", `${kind}-group-head`);
  const headId = `${kind}-group-${status}`;
  let label;
  if (onToggle) {
    label = el("button", `${kind}-group-toggle`);
    label.type = "button";
    label.setAttribute("aria-controls", `${kind}-list-${status}`);
    label.addEventListener("click", onToggle);
  } else {
    label = el("span", `${kind}-group-label`);
  }
  label.id = headId;
  const count = el("span", `count-pill ${kind}-count`);
  label.append(el("span", `${kind}-group-name`, name), count);
  head.append(label);
  const list = el("ol", `${kind}-list`);
  list.id = `${kind}-list-${status}`;
  list.setAttribute("aria-labelledby", headId);
  return { section, head, list, count, label };
}
