// The message box: Enter to send, @mention and /command menus, images, reply-to and editing.
import { api } from "./api.js";
import { $, avatar, el, snippet, toast } from "./dom.js";
import { icon } from "./icons.js";

export const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
export const MENTION_BEFORE_CARET = /(?:^|[^\w@./-])@([A-Za-z0-9_-]*)$/;
const STATE_RANK = { online: 0, busy: 0, idle: 1, offline: 2 };

export const COMMANDS = [
  { name: "continue", hint: "Resume agent routing after the loop guard paused it" },
  { name: "search", args: "text", hint: "Search messages in all channels" },
  { name: "new", args: "channel", hint: "Create a channel and open it" },
  { name: "name", args: "display name", hint: "Change the name you post as" },
  { name: "summary", args: "@agent", hint: "Ask an agent to summarize this channel" },
  { name: "clear", hint: "Delete every message in this channel, for everyone (asks first)" },
];

export class Composer {
  constructor(app) {
    this.app = app;
    this.form = $("composer");
    this.input = $("composer-input");
    this.suggestBox = $("suggest");
    this.previews = $("attachment-previews");
    this.context = $("composer-context");
    this.contextText = $("composer-context-text");
    this.fileInput = $("file-input");
    this.items = []; // suggestions on screen
    this.active = 0;
    this.suggestPrefix = "suggest";
    this.mode = null; // {kind: "reply"|"edit", msg}
    this.uploads = []; // {file, url, done: Promise, result, node}
    // Draft, reply/edit mode and images belong to the channel they were started in.
    this.channel = null;
    this.saved = new Map(); // channel -> {text, mode, uploads}

    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (ev) => this.onKey(ev));
    this.input.addEventListener("input", () => {
      this.autosize();
      this.suggest();
    });
    this.input.addEventListener("blur", () => setTimeout(() => this.closeSuggest(), 150));
    this.input.addEventListener("paste", (ev) => takeFiles(ev, ev.clipboardData).forEach((f) => this.attach(f)));
    $("attach-button").addEventListener("click", () => this.fileInput.click());
    // The clock: schedule what is typed for later (js/schedules.js owns the popover).
    $("schedule-button").addEventListener("click", () => this.app.schedules.togglePopover());
    this.fileInput.addEventListener("change", () => {
      [...this.fileInput.files].forEach((f) => this.attach(f));
      this.fileInput.value = "";
    });
    $("composer-context-cancel").addEventListener("click", () => this.cancelMode());
    const main = $("main");
    main.addEventListener("dragover", (ev) => {
      if ([...(ev.dataTransfer?.types || [])].includes("Files")) {
        ev.preventDefault();
        main.classList.add("dropping");
      }
    });
    main.addEventListener("dragleave", (ev) => {
      if (ev.target === main || !main.contains(ev.relatedTarget)) main.classList.remove("dropping");
    });
    main.addEventListener("drop", (ev) => {
      main.classList.remove("dropping");
      const files = takeFiles(ev, ev.dataTransfer);
      files.forEach((f) => this.attach(f));
      if (files.length) this.input.focus();
    });
  }

  setChannel(name) {
    this.input.placeholder = `Message #${name}`;
    this.input.setAttribute("aria-label", `Message #${name}`);
    if (name === this.channel) return;
    if (this.channel != null) {
      const text = this.input.value;
      if (text || this.mode || this.uploads.length) {
        this.saved.set(this.channel, { text, mode: this.mode, uploads: this.uploads });
      } else {
        this.saved.delete(this.channel);
      }
    }
    this.channel = name;
    const state = this.saved.get(name) || { text: "", mode: null, uploads: [] };
    this.saved.delete(name);
    this.closeSuggest();
    this.input.value = state.text;
    this.mode = state.mode;
    this.uploads = state.uploads;
    this.previews.replaceChildren(...this.uploads.map((u) => u.node));
    if (this.mode) this.showContext(this.contextFor(this.mode));
    else this.context.hidden = true;
    this.autosize();
  }

  /** The channel was renamed: its draft and mode go with it. */
  renameChannel(old, name) {
    if (this.channel === old) this.channel = name;
    if (this.saved.has(old)) {
      this.saved.set(name, this.saved.get(old));
      this.saved.delete(old);
    }
    // The message being edited or answered moved with its channel.
    for (const state of [this, ...this.saved.values()]) {
      if (state.mode?.msg.channel === old) state.mode = { ...state.mode, msg: { ...state.mode.msg, channel: name } };
    }
  }

  /** The channel was deleted: nothing typed for it can be sent anywhere else. */
  forget(name) {
    const state = this.saved.get(name);
    this.saved.delete(name);
    for (const u of state?.uploads || []) URL.revokeObjectURL(u.url);
    if (this.channel === name) {
      this.mode = null;
      this.context.hidden = true;
    }
  }

  focus() {
    this.input.focus();
  }

  insertText(text) {
    const { selectionStart: a, selectionEnd: b, value } = this.input;
    const before = value.slice(0, a);
    const pad = before && !/\s$/.test(before) ? " " : "";
    this.input.value = before + pad + text + value.slice(b);
    const caret = a + pad.length + text.length;
    this.input.setSelectionRange(caret, caret);
    this.autosize();
    this.input.focus();
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  // -- reply and edit -------------------------------------------------------------------------
  contextFor(mode) {
    if (mode.kind === "edit") return "Editing your message · Esc to cancel";
    return `Replying to ${mode.msg.sender}: ${snippet(mode.msg.text, 70) || "(image)"}`;
  }

  replyTo(msg) {
    this.mode = { kind: "reply", msg };
    this.showContext(this.contextFor(this.mode));
    // Answering an agent mentions it, so it wakes and reads the answer (unless it is mentioned already).
    const name = msg.sender.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (msg.kind === "agent" && !new RegExp(`(^|[^\\w@./-])@${name}(?![\\w-])`, "i").test(this.input.value)) {
      this.input.value = `@${msg.sender} ${this.input.value.replace(/^\s+/, "")}`;
      this.autosize();
    }
    this.input.focus();
    const end = this.input.value.length;
    this.input.setSelectionRange(end, end);
  }

  edit(msg) {
    this.mode = { kind: "edit", msg };
    this.showContext(this.contextFor(this.mode));
    this.input.value = msg.text;
    this.autosize();
    this.input.focus();
    this.input.setSelectionRange(msg.text.length, msg.text.length);
  }

  showContext(text) {
    this.contextText.textContent = text;
    this.context.hidden = false;
    this.context.classList.toggle("editing", this.mode?.kind === "edit");
  }

  cancelMode() {
    if (this.mode?.kind === "edit") {
      this.input.value = "";
      this.autosize();
    }
    this.mode = null;
    this.context.hidden = true;
    this.input.focus();
  }

  // -- keys and menus -------------------------------------------------------------------------
  onKey(ev) {
    if (ev.isComposing) return;
    if (this.suggestOpen()) {
      if (this.moveSuggest(ev)) return;
      if (ev.key === "Enter" || ev.key === "Tab") {
        const item = this.items[this.active];
        // "/continue" is complete by itself: Enter runs it instead of just picking it.
        if (!(ev.key === "Enter" && item.kind === "command" && this.input.value.trim() === `/${item.name}`)) {
          ev.preventDefault();
          this.choose(item);
          return;
        }
      }
      if (ev.key === "Escape") {
        ev.preventDefault();
        this.closeSuggest();
        return;
      }
    }
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      this.submit();
    } else if (ev.key === "Escape" && this.mode) {
      ev.preventDefault();
      this.cancelMode();
    } else if (ev.key === "ArrowUp" && !this.input.value && !this.mode) {
      const last = this.app.timeline.lastOwnMessage();
      if (last) {
        ev.preventDefault();
        this.edit(last);
      }
    }
  }

  suggest() {
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const cmd = /^\/(\w*)$/.exec(before);
    if (cmd && this.input.value.indexOf("\n") === -1) {
      const q = cmd[1].toLowerCase();
      this.items = COMMANDS.filter((c) => c.name.startsWith(q)).map((c) => ({ kind: "command", ...c }));
      return this.showSuggest();
    }
    const mention = MENTION_BEFORE_CARET.exec(before);
    if (mention) {
      const q = mention[1].toLowerCase();
      this.mentionStart = caret - mention[1].length - 1;
      this.items = mentionItems(this.app, q);
      return this.showSuggest();
    }
    this.closeSuggest();
  }

  choose(item) {
    if (item.kind === "command") {
      this.input.value = `/${item.name}${item.args ? " " : ""}`;
    } else {
      this.insertMention(item);
    }
    this.closeSuggest();
    this.autosize();
    this.input.focus();
  }

  // -- sending ----------------------------------------------------------------------------------
  async submit() {
    const text = this.input.value;
    const trimmed = text.trim();
    const channel = this.channel;
    if (this.mode && this.mode.msg.channel !== channel) this.cancelMode(); // never apply it elsewhere
    if (this.mode?.kind === "edit") {
      if (!trimmed) return;
      try {
        const msg = await api.edit(this.mode.msg.id, text);
        this.app.timeline.update(msg);
        this.input.value = "";
        this.cancelMode();
      } catch (err) {
        toast(`Could not edit: ${err.message}`);
      }
      return;
    }
    const command = /^\/(\w+)(?:\s+([\s\S]*))?$/.exec(trimmed);
    if (command && COMMANDS.some((c) => c.name === command[1])) {
      this.input.value = "";
      this.autosize();
      this.closeSuggest();
      await this.app.command(command[1], (command[2] || "").trim());
      return;
    }
    if (command) {
      // "/clear" and friends are not messages: say so instead of posting them to everyone.
      this.closeSuggest();
      const known = COMMANDS.map((c) => `/${c.name}`).join(", ");
      toast(`Unknown command /${command[1]}: nothing was sent. Commands: ${known}.`);
      return;
    }
    const sending = this.uploads;
    await Promise.all(sending.map((u) => u.done));
    if (this.channel !== channel) return; // switched while images uploaded: it waits in its channel
    const attachments = sending.filter((u) => u.result).map((u) => u.result);
    if (!trimmed && !attachments.length) return;
    const payload = { text, attachments };
    if (this.mode?.kind === "reply") payload.reply_to = this.mode.msg.id;
    this.input.value = "";
    this.autosize();
    this.closeSuggest();
    try {
      const msg = await api.post(channel, payload);
      this.app.onSent(msg);
      sending.forEach((u) => {
        u.node.remove();
        URL.revokeObjectURL(u.url);
      });
      if (this.channel === channel) {
        this.uploads = this.uploads.filter((u) => !sending.includes(u));
        if (this.mode) this.cancelMode();
      } else {
        this.saved.delete(channel); // switched away while it was sending: nothing is left over there
      }
    } catch (err) {
      if (this.channel === channel) {
        if (!this.input.value) this.input.value = text; // keep what was typed
        this.autosize();
      }
      toast(`Not sent: ${err.message}`);
    }
  }
}

/**
 * What the channel's message box and a job thread's share: the suggestion list and the images.
 * The owner has `input`, `suggestBox`, `items`, `active`, `mentionStart`, `suggestPrefix`,
 * `choose(item)`, `previews` and `uploads`.
 */
export const messageBox = {
  showSuggest() {
    if (!this.items.length) return this.closeSuggest();
    this.suggestBox.replaceChildren();
    this.items.forEach((item, i) => {
      const li = suggestionItem(item);
      li.id = `${this.suggestPrefix}-${i}`;
      li.addEventListener("mousedown", (ev) => {
        ev.preventDefault();
        this.choose(item);
      });
      this.suggestBox.append(li);
    });
    this.suggestBox.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.highlight(0);
  },

  highlight(i) {
    this.active = i;
    [...this.suggestBox.children].forEach((li, n) => li.setAttribute("aria-selected", String(n === i)));
    this.input.setAttribute("aria-activedescendant", `${this.suggestPrefix}-${i}`);
  },

  suggestOpen() {
    return !this.suggestBox.hidden && this.items.length > 0;
  },

  /** Up and Down move the highlight while the list is open (true: the key was used). */
  moveSuggest(ev) {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return false;
    ev.preventDefault();
    const step = ev.key === "ArrowDown" ? 1 : -1;
    this.highlight((this.active + step + this.items.length) % this.items.length);
    return true;
  },

  closeSuggest() {
    this.items = [];
    this.suggestBox.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  },

  /** Replace the `@partial` before the caret with `@name `. */
  insertMention(item) {
    const value = this.input.value;
    const caret = this.input.selectionStart;
    const text = `@${item.name} `;
    this.input.value = value.slice(0, this.mentionStart) + text + value.slice(caret);
    const pos = this.mentionStart + text.length;
    this.input.setSelectionRange(pos, pos);
  },

  attach(file) {
    const item = startUpload(file, (it) => this.dropUpload(it));
    if (!item) return;
    this.previews.append(item.node);
    this.uploads.push(item);
  },

  dropUpload(item) {
    this.uploads = this.uploads.filter((u) => u !== item);
    item.node.remove();
    URL.revokeObjectURL(item.url);
  },
};
Object.assign(Composer.prototype, messageBox);

export function stateText(state) {
  return { online: "online", busy: "working", idle: "idle", offline: "offline" }[state] || state;
}

/** Who an `@q` can complete to: agents (online first), people seen here, then @all. */
export function mentionItems(app, q) {
  const agents = app
    .agentList()
    .filter((a) => a.name.startsWith(q) || (a.label || "").toLowerCase().startsWith(q))
    .sort((a, b) => (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3) || a.name.localeCompare(b.name))
    .map((a) => ({ kind: "agent", name: a.name, agent: a }));
  const people = [...app.people()]
    .filter((p) => p.toLowerCase().startsWith(q) && !/\s/.test(p))
    .map((p) => ({ kind: "person", name: p }));
  const all = "all".startsWith(q) ? [{ kind: "all", name: "all" }] : [];
  return [...agents, ...people, ...all].slice(0, 8);
}

/** One row of a suggestion list (a command or a mention), shared by every message box. */
export function suggestionItem(item) {
  const li = el("li", `suggest-item ${item.kind}`);
  li.setAttribute("role", "option");
  if (item.kind === "command") {
    li.append(el("span", "cmd", `/${item.name}`));
    if (item.args) li.append(el("span", "args", item.args));
    li.append(el("span", "hint", item.hint));
  } else {
    li.append(avatar(item.name, item.agent, true));
    li.append(el("span", "name", `@${item.name}`));
    const hint = item.agent ? `${item.agent.label} · ${stateText(item.agent.state)}` : item.kind === "all" ? "every online agent" : "person";
    li.append(el("span", "hint", hint));
    if (item.agent) li.dataset.state = item.agent.state;
  }
  return li;
}

/** The files a paste or drop brings (the browser's default is then prevented). */
export function takeFiles(ev, source) {
  const files = [...(source?.files || [])];
  if (files.length) ev.preventDefault();
  return files;
}

/**
 * Start uploading an image: a preview (with a remove button calling `onRemove`) and `done`, a
 * promise that settles when the upload does. Not an image: says so and returns null.
 */
export function startUpload(file, onRemove) {
  if (!IMAGE_TYPES.has(file.type)) {
    toast(`${file.name || "That file"}: only PNG, JPEG, GIF and WebP images can be attached.`);
    return null;
  }
  const item = { file, url: URL.createObjectURL(file), result: null };
  const li = el("li", "preview uploading");
  const img = el("img");
  img.src = item.url;
  img.alt = file.name || "image";
  const remove = el("button", "icon-btn small remove");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove ${file.name || "image"}`);
  remove.append(icon("x", 14));
  remove.addEventListener("click", () => onRemove(item));
  li.append(img, remove);
  item.node = li;
  item.done = api.upload(file).then(
    (result) => {
      item.result = result;
      li.classList.remove("uploading");
    },
    (err) => {
      toast(`Upload failed: ${err.message}`);
      onRemove(item);
    },
  );
  return item;
}
