// Conveniences around the message box: "Copy as Markdown" on a message, and /clear (after a
// confirmation naming the channel and how many messages go) with every open page emptying the
// channel's timeline when the server says it was cleared.
import { request } from "./api.js";
import { el, openDialog, snippet, toast } from "./dom.js";
import { icon } from "./icons.js";

const enc = encodeURIComponent;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The message as Markdown: its raw text, a "> quoted" line for what it answers, its images. */
export function messageMarkdown(msg, quoted) {
  const parts = [];
  if (msg.reply_to && quoted && !quoted.deleted) {
    parts.push(`> ${quoted.sender}: ${snippet(quoted.text, 200) || "(image)"}`, "");
  }
  if (msg.text) parts.push(msg.text);
  for (const a of msg.attachments || []) {
    if (typeof a.url === "string" && a.url.startsWith("/uploads/")) {
      parts.push(`![${(a.name || "image").replace(/[[\]]/g, "")}](${location.origin}${a.url})`);
    }
  }
  return parts.join("\n");
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission (or an older browser): the selection route still works on a click.
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.cssText = "position:fixed;top:-1000px;opacity:0";
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

/** "Copy as Markdown" for the message toolbar (timeline.js actions()). */
export function addCopyAction(app, bar, msg) {
  if (msg.deleted || msg.kind === "system") return;
  const b = el("button", "icon-btn small");
  b.type = "button";
  b.dataset.action = "copy";
  b.title = "Copy as Markdown";
  b.setAttribute("aria-label", "Copy as Markdown");
  b.append(icon("copy", 16));
  b.addEventListener("click", async () => {
    const quoted = msg.reply_to ? app.timeline.quoteCache.get(msg.reply_to) : null;
    const ok = await copyText(messageMarkdown(msg, quoted));
    toast(ok ? "Copied as Markdown." : "Could not copy: the browser refused the clipboard.");
  });
  bar.append(b);
}

/** /clear: confirm (channel and count named), then delete the channel's timeline for everyone. */
export async function confirmClear(app) {
  const name = app.channel;
  if (!name) return;
  let count;
  try {
    ({ count } = await request("GET", `/api/channels/${enc(name)}/messages/count`));
  } catch (err) {
    return toast(`Could not clear #${name}: ${err.message}`);
  }
  if (!count) return toast(`#${name} has no messages to clear.`);
  const result = await openDialog({
    title: `Clear #${name}?`,
    text:
      `This deletes all ${plural(count, "message")} in #${name} for everyone, with their pins and images. ` +
      "Job threads stay. It cannot be undone.",
    ok: `Delete ${plural(count, "message")}`,
    danger: true,
    submit: () => request("DELETE", `/api/channels/${enc(name)}/messages`),
  });
  if (result && typeof result.deleted === "number") toast(`Cleared #${name}: ${plural(result.deleted, "message")} deleted.`);
}

/** A `channel_cleared` event: every open page drops what it shows of that channel's timeline. */
export function onChannelCleared(app, name) {
  app.unread.delete(name);
  app.pins.onCleared(name);
  const mode = app.composer.mode;
  if (mode && mode.msg.channel === name && mode.msg.job_id == null && app.composer.channel === name) {
    app.composer.cancelMode(); // the message it answered or edited is gone
  }
  if (app.channel === name) {
    app.timeline.open(name, null).catch((err) => toast(`Could not reload #${name}: ${err.message}`));
  }
  app.updateTitle();
}
