// The sidebar: channel list with unread counts, and the agent roster.
import { $, avatar, el, fmtAgo } from "./dom.js";
import { icon } from "./icons.js";
import { stateText } from "./composer.js";
import { rolePill, rosterWords, rulesMark } from "./agents.js";

const DELIVERY = {
  queued: ["queued", "Latest wake-up is queued"],
  injected: ["delivered", "Latest wake-up was delivered"],
  failed: ["failed", "Latest wake-up could not be delivered"],
  waiting: ["waiting", "Its CLI shows a question: someone must answer it in the agent's terminal"],
};
const ORDER = { busy: 0, online: 1, idle: 2, offline: 3 };

/** Re-render `list` without losing keyboard focus: live updates re-render these lists often. */
function keepingFocus(list, render) {
  const active = document.activeElement;
  let selector = null;
  if (active && list.contains(active)) {
    const item = active.closest("[data-channel], [data-agent]");
    const key = item?.dataset.channel != null ? "data-channel" : "data-agent";
    const value = item?.getAttribute(key);
    const part = [".rename", ".agent-settings"].find((cls) => active.matches(cls)) || "";
    if (value != null) selector = `[${key}="${CSS.escape(value)}"]${part ? ` ${part}` : ""}`;
  }
  render();
  if (selector) {
    const target = list.querySelector(selector);
    (target?.matches("button") ? target : target?.querySelector("button"))?.focus({ preventScroll: true });
  }
}

export function renderChannels(app) {
  const list = $("channel-list");
  keepingFocus(list, () => fillChannels(app, list));
}

function fillChannels(app, list) {
  list.replaceChildren();
  const names = [...app.channels.keys()].sort((a, b) =>
    a === "general" ? -1 : b === "general" ? 1 : a.localeCompare(b),
  );
  for (const name of names) {
    const li = el("li");
    const btn = el("button", "channel");
    btn.type = "button";
    btn.dataset.channel = name;
    const unread = app.unreadCount(name);
    const label = el("span", "channel-name");
    label.append(el("span", "hash", "#"), name);
    btn.append(label);
    if (name === app.channel) btn.setAttribute("aria-current", "page");
    if (app.muted.has(name)) {
      btn.classList.add("is-muted");
      btn.title = `#${name} is muted`;
    }
    if (app.channels.get(name).paused) btn.append(el("span", "paused-dot", "paused"));
    if (unread && name !== app.channel) {
      btn.classList.add("has-unread");
      const badge = el("span", "badge", unread > 99 ? "99+" : String(unread));
      badge.setAttribute("aria-hidden", "true");
      btn.append(badge);
      btn.setAttribute("aria-label", `${name}, ${unread > 99 ? "more than 99" : unread} unread`);
    }
    btn.addEventListener("click", () => app.open(name));
    li.append(btn);
    list.append(li);
  }
}

export function renderRoster(app) {
  const list = $("roster");
  keepingFocus(list, () => fillRoster(app, list));
}

function fillRoster(app, list) {
  list.replaceChildren();
  const agents = app.agentList().sort(
    (a, b) => (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9) || a.name.localeCompare(b.name),
  );
  $("roster-empty").hidden = agents.length > 0;
  const online = agents.filter((a) => a.state !== "offline").length;
  $("agent-count").textContent = agents.length ? `${online}/${agents.length}` : "";
  $("agent-count").title = `${online} of ${agents.length} online`;
  for (const agent of agents) {
    const li = el("li", `agent state-${agent.state}`);
    li.dataset.agent = agent.name;
    const main = el("button", "agent-main");
    main.type = "button";
    main.title = `Mention @${agent.name}`;
    const face = avatar(agent.name, agent);
    const dot = el("span", "presence-dot");
    face.append(dot);
    const text = el("span", "agent-text");
    const top = el("span", "agent-name");
    top.append(el("span", "label", agent.label || agent.name));
    if (agent.label && agent.label.toLowerCase() !== agent.name) top.append(el("span", "handle", `@${agent.name}`));
    if (agent.role) top.append(rolePill(agent));
    const status = el("span", "agent-status");
    const state = el("span", "state", stateText(agent.state));
    status.append(state);
    if (agent.state === "offline" && agent.last_seen) status.append(el("span", "ago", `· ${fmtAgo(agent.last_seen)}`));
    const delivery = DELIVERY[agent.delivery];
    if (delivery) {
      const badge = el("span", `delivery delivery-${agent.delivery}`, delivery[0]);
      badge.title = delivery[1];
      status.append(badge);
    }
    const rules = rulesMark(agent);
    if (rules) status.append(rules);
    text.append(top, status);
    main.append(face, text);
    const stateLabel = `${stateText(agent.state)}${delivery ? `, last wake-up ${delivery[0]}` : ""}`;
    main.setAttribute("aria-label", `${agent.label || agent.name} (@${agent.name})${rosterWords(agent)}, ${stateLabel}. Mention`);
    main.addEventListener("click", () => {
      app.composer.insertText(`@${agent.name} `);
      app.closeSidebar();
    });
    const rename = el("button", "icon-btn small rename");
    rename.type = "button";
    rename.setAttribute("aria-label", `Rename ${agent.name}`);
    rename.title = "Rename";
    rename.append(icon("edit", 14));
    rename.addEventListener("click", () => app.renameAgent(agent));
    li.append(main, rename, app.agentsUI.menuButton(agent));
    list.append(li);
  }
}
