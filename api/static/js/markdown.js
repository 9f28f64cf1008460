// Answers as safe Markdown: marked parses, raw HTML in the text is shown as text, DOMPurify keeps a short
// list of tags, and [n] markers become citation buttons. No HTML from a document ever reaches the page as HTML.
import { Marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const parser = new Marked({ gfm: true, breaks: true, async: false });
parser.use({
  renderer: {
    html: (token) => escapeHtml(token.text), // raw HTML, block or inline, is text
    image: (token) => escapeHtml(token.text || token.href || ""), // no remote images: their alt text
  },
});

const PURIFY = {
  ALLOWED_TAGS: [
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "hr",
  ],
  ALLOWED_ATTR: ["href", "title", "start", "align"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  RETURN_DOM_FRAGMENT: true,
};
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const MARKER = /\[(\d+)\]/g;

/** Renders `text` into `target`; citeButton(n) gives the node for a marker [n], or null to leave it text. */
export function renderMarkdown(target, text, citeButton) {
  const fragment = DOMPurify.sanitize(parser.parse(String(text || "")), PURIFY);
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const nodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || !node.parentElement.closest("code, pre, a")) nodes.push(node);
  }
  for (const node of nodes) {
    const value = node.nodeValue;
    MARKER.lastIndex = 0;
    if (!MARKER.test(value)) continue;
    MARKER.lastIndex = 0;
    const parts = [];
    let last = 0;
    for (let match; (match = MARKER.exec(value)); ) {
      const button = citeButton(Number(match[1]));
      if (!button) continue; // an unknown number stays plain text
      parts.push(value.slice(last, match.index), button);
      last = match.index + match[0].length;
    }
    parts.push(value.slice(last));
    node.replaceWith(...parts);
  }
  target.replaceChildren(fragment);
}

const SENTENCE_ENDS = ["。", "！", "？", ". ", "! ", "? ", "\n"];

/** The sentence of `text` that the marker [n] is attached to (what the citation supports). */
export function claimOf(text, n) {
  const at = String(text || "").indexOf(`[${n}]`);
  if (at < 0) return "";
  // markers written after the full stop ("... required. [1]") belong to the sentence before them
  const before = text.slice(0, at).replace(/(?:\s*\[\d+\])+\s*$/, "").replace(/[。！？.!?]\s*$/, "");
  const cut = Math.max(0, ...SENTENCE_ENDS.map((end) => {
    const found = before.lastIndexOf(end);
    return found < 0 ? 0 : found + end.length;
  }));
  return before.slice(cut).replace(/\[\d+\]/g, "").trim();
}
