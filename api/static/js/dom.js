// DOM helpers. Text from the server is hostile: it only ever goes into textContent or attributes.
export const $ = (id) => document.getElementById(id);

/** An element: props set attributes (text → textContent, on* → listeners); children are appended. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

export const basename = (path) => String(path || "").split(/[\\/]/).filter(Boolean).pop() || String(path || "");
export const kbPath = (kb) => `/kbs/${encodeURIComponent(kb)}`;
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `text` with [start, end) wrapped in <mark> (as nodes, never HTML). */
export function marked(text, start, end, props = {}) {
  if (start === null || start === undefined || end <= start) return [document.createTextNode(text)];
  return [
    document.createTextNode(text.slice(0, start)),
    el("mark", { ...props, text: text.slice(start, end) }),
    document.createTextNode(text.slice(end)),
  ];
}
