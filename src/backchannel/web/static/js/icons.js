// Small stroke icons built with the DOM (no emoji fonts needed, nothing inline in the HTML).
const SVG_NS = "http://www.w3.org/2000/svg";

const PATHS = {
  plus: ["M12 5v14", "M5 12h14"],
  x: ["M6 6l12 12", "M18 6L6 18"],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M14 6l4 4"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
  reply: ["M10 8L4 13l6 5", "M4 13h10a6 6 0 0 1 6 6"],
  send: ["M4 12l16-8-6 16-3-7z", "M11 13l9-9"],
  image: ["M4 5h16v14H4z", "M4 16l5-5 4 4 3-3 4 4", "M15 9h.01"],
  menu: ["M4 7h16", "M4 12h16", "M4 17h16"],
  bell: ["M6 16V11a6 6 0 0 1 12 0v5l2 2H4z", "M10 20a2 2 0 0 0 4 0"],
  "bell-off": ["M6 16V11a6 6 0 0 1 9-5.2", "M18 11v5l2 2H8", "M10 20a2 2 0 0 0 4 0", "M4 4l16 16"],
  monitor: ["M3 5h18v11H3z", "M9 20h6", "M12 16v4"],
  copy: ["M9 9h11v11H9z", "M5 15H4V4h11v1"],
  check: ["M5 12l5 5 9-10"],
  down: ["M12 5v14", "M6 13l6 6 6-6"],
  search: ["M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z", "M16 16l4 4"],
  more: ["M5 12h.01", "M12 12h.01", "M19 12h.01"],
};

export function icon(name, size = 18) {
  return pathIcon(PATHS[name] || [], size);
}

/** A stroke icon in the same style from raw path data, for shapes only one feature uses. */
export function pathIcon(paths, size = 18) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/** Fill every `[data-icon]` button in the static page with its icon. */
export function hydrateIcons(root = document) {
  for (const el of root.querySelectorAll("[data-icon]")) {
    if (!el.querySelector("svg")) el.prepend(icon(el.dataset.icon));
  }
}
