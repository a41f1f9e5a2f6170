// A small Markdown renderer that builds DOM nodes directly.
//
// Safety comes from construction, not from sanitising: message text only ever reaches the page
// through text nodes (textContent), and the only attribute taken from a message is a link's href,
// which must parse as http(s) or mailto. No HTML in a message is ever interpreted, so
// `<img onerror>` and friends show up as the literal text that was typed.
import { icon } from "./icons.js";

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const MENTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*/;

/** `href` if it is safe to link to, else null. Relative links resolve against this page. */
export function safeUrl(href) {
  try {
    const url = new URL(href, window.location.origin);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function link(href, label) {
  const a = el("a");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  if (typeof label === "string") a.textContent = label;
  else a.append(label);
  return a;
}

/**
 * Render `text` into a fragment.
 * @param {string} text
 * @param {{mention?: (name: string) => HTMLElement | null}} ctx mention(name) styles an @name
 */
export function renderMarkdown(text, ctx = {}) {
  const frag = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag, ctx, 0);
  return frag;
}

function renderBlocks(lines, parent, ctx, depth) {
  let i = 0;
  let para = [];
  const flush = () => {
    if (!para.length) return;
    const p = el("p");
    para.forEach((line, n) => {
      if (n) p.append(el("br"));
      renderInline(line, p, ctx);
    });
    parent.append(p);
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trimStart().startsWith(marker)) body.push(lines[i++]);
      i += 1; // the closing fence (or the end of the message)
      parent.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    if (!line.trim()) {
      flush();
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      const h = el("div", `md-h md-h${heading[1].length}`);
      h.setAttribute("role", "heading");
      h.setAttribute("aria-level", String(Math.min(6, heading[1].length + 2)));
      renderInline(heading[2], h, ctx);
      parent.append(h);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      // Unlike CommonMark's setext headings, "---" under a line is a rule: what chat writers mean.
      flush();
      parent.append(el("hr"));
      i += 1;
      continue;
    }
    if (/^ {0,3}>/.test(line) && depth < 4) {
      flush();
      const inner = [];
      while (i < lines.length && /^ {0,3}>/.test(lines[i])) inner.push(lines[i++].replace(/^ {0,3}> ?/, ""));
      const quote = el("blockquote");
      renderBlocks(inner, quote, ctx, depth + 1);
      parent.append(quote);
      continue;
    }
    if (LIST_ITEM.test(line)) {
      flush();
      i = renderList(lines, i, parent, ctx, depth);
      continue;
    }
    if (isTable(lines, i)) {
      flush();
      i = renderTable(lines, i, parent, ctx);
      continue;
    }
    para.push(line);
    i += 1;
  }
  flush();
}

function renderList(lines, start, parent, ctx, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) list.start = parseInt(first[2], 10);
  const indent = first[1].length;
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    i += 1;
    // Continuation lines and nested lists belong to this item while they are indented further.
    while (i < lines.length && lines[i].trim() && /^\s+/.test(lines[i]) && lines[i].search(/\S/) > indent) {
      body.push(lines[i].slice(Math.min(lines[i].search(/\S/), indent + 2)));
      i += 1;
    }
    const li = el("li");
    const task = /^\[([ xX])\]\s+/.exec(body[0]);
    if (task) {
      const box = el("input");
      box.type = "checkbox";
      box.disabled = true;
      box.checked = task[1] !== " ";
      li.append(box, " ");
      body[0] = body[0].slice(task[0].length);
    }
    if (body.length === 1) renderInline(body[0], li, ctx);
    else if (depth < 4) renderBlocks(body, li, ctx, depth + 1);
    list.append(li);
  }
  parent.append(list);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function isTable(lines, i) {
  // GFM: a header row, then a delimiter row with the same number of cells.
  const sep = lines[i + 1];
  if (!lines[i].includes("|") || sep == null || !sep.includes("|") || !TABLE_SEP.test(sep)) return false;
  return splitRow(lines[i]).length === splitRow(sep).length;
}

function renderTable(lines, start, parent, ctx) {
  const wrap = el("div", "md-table");
  const table = el("table");
  const head = el("thead");
  const tr = el("tr");
  for (const cell of splitRow(lines[start])) {
    const th = el("th");
    renderInline(cell, th, ctx);
    tr.append(th);
  }
  head.append(tr);
  table.append(head);
  const body = el("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
    const row = el("tr");
    for (const cell of splitRow(lines[i])) {
      const td = el("td");
      renderInline(cell, td, ctx);
      row.append(td);
    }
    body.append(row);
    i += 1;
  }
  table.append(body);
  wrap.append(table);
  parent.append(wrap);
  return i;
}

function codeBlock(code, lang) {
  const wrap = el("div", "code-block");
  const bar = el("div", "code-bar");
  bar.append(el("span", "code-lang", lang || "text"));
  const copy = el("button", "copy-btn");
  copy.type = "button";
  copy.setAttribute("aria-label", "Copy code");
  copy.append(icon("copy", 14), el("span", null, "Copy"));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code);
    } catch {
      fallbackCopy(code);
    }
    copy.lastChild.textContent = "Copied";
    copy.classList.add("done");
    setTimeout(() => {
      copy.lastChild.textContent = "Copy";
      copy.classList.remove("done");
    }, 1500);
  });
  bar.append(copy);
  const pre = el("pre");
  pre.tabIndex = 0;
  const codeEl = el("code", null, code);
  if (lang) codeEl.dataset.lang = lang;
  pre.append(codeEl);
  wrap.append(bar, pre);
  return wrap;
}

function fallbackCopy(text) {
  const area = el("textarea");
  area.value = text;
  area.className = "sr-only";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

// Inline syntax, earliest match wins. Each rule: regex (sticky search done via exec on a slice).
const INLINE = [
  { kind: "escape", re: /\\([\\`*_{}[\]()#+\-.!|~>@])/ },
  { kind: "code", re: /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/ },
  { kind: "link", re: /!?\[([^\]\n]{1,500})\]\(\s*<?([^)\s>]{1,2000})>?(?:\s+"[^"]*")?\s*\)/ },
  { kind: "auto", re: /<((?:https?:\/\/|mailto:)[^>\s]{1,2000})>/ },
  { kind: "url", re: /\b(?:https?:\/\/|www\.)[^\s<>"'`]{1,2000}/ },
  { kind: "strong", re: /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__(?!\w)/ },
  { kind: "strike", re: /~~(?=\S)([\s\S]*?\S)~~/ },
  { kind: "em", re: /\*(?=[^\s*])([^*]*?[^\s*])\*|(?<!\w)_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/ },
  { kind: "mention", re: /(?<![\w@./-])@([A-Za-z0-9][A-Za-z0-9_-]*)/ },
];

function renderInline(text, parent, ctx, noLinks = false) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      if (noLinks && (rule.kind === "link" || rule.kind === "url" || rule.kind === "auto")) continue;
      const m = rule.re.exec(rest);
      if (m && (best === null || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) {
      parent.append(rest);
      return;
    }
    const { rule, m } = best;
    if (m.index) parent.append(rest.slice(0, m.index));
    let consumed = m[0].length;
    switch (rule.kind) {
      case "escape":
        parent.append(m[1]);
        break;
      case "code":
        parent.append(el("code", null, m[2].replace(/^ (.*) $/s, "$1")));
        break;
      case "link": {
        const href = safeUrl(m[2]);
        if (href) {
          const label = document.createDocumentFragment();
          renderInline(m[1], label, ctx, true);
          parent.append(link(href, label));
        } else {
          parent.append(m[0]); // not a link we allow: show exactly what was written
        }
        break;
      }
      case "auto": {
        const href = safeUrl(m[1]);
        parent.append(href ? link(href, m[1]) : m[0]);
        break;
      }
      case "url": {
        let raw = m[0];
        // Trailing punctuation ends the sentence, not the URL (unless it closes a parenthesis).
        while (/[.,;:!?'")\]]$/.test(raw)) {
          if (raw.endsWith(")") && (raw.match(/\(/g) || []).length >= (raw.match(/\)/g) || []).length) break;
          raw = raw.slice(0, -1);
        }
        consumed = raw.length;
        const href = safeUrl(raw.startsWith("www.") ? `https://${raw}` : raw);
        parent.append(href ? link(href, raw) : raw);
        break;
      }
      case "strong":
      case "strike":
      case "em": {
        const tag = { strong: "strong", strike: "del", em: "em" }[rule.kind];
        const node = el(tag);
        renderInline(m[1] ?? m[2], node, ctx, noLinks);
        parent.append(node);
        break;
      }
      case "mention": {
        const name = MENTION_NAME.exec(m[1])[0];
        const node = ctx.mention ? ctx.mention(name) : null;
        parent.append(node || `@${name}`);
        break;
      }
    }
    rest = rest.slice(m.index + consumed);
  }
}
