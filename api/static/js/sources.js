// Opening a source: the whole cited chunk with its supporting sentence marked and its neighbours, then the
// document's text at that place with the passage marked, or the document's chunks one page at a time.
import { getJson } from "./api.js";
import { $, basename, el, kbPath, marked } from "./dom.js";
import { showError, state } from "./state.js";
import { t } from "./strings.js";

const TEXT_RADIUS = 8;
const CHUNK_PAGE = 20;

export function locationOf(item) {
  const parts = [];
  const meta = item.metadata || {};
  if (item.page !== null && item.page !== undefined) parts.push(t("page", { page: item.page }));
  if (item.section) parts.push(item.section);
  const lineStart = item.line_start ?? meta.line_start;
  const lineEnd = item.line_end ?? meta.line_end;
  if (lineStart !== undefined && lineStart !== null && lineEnd !== undefined && lineEnd !== null) {
    parts.push(t("lines", { start: lineStart, end: lineEnd }));
  } else if (item.start !== undefined && item.end !== undefined) {
    parts.push(t("chars", { start: item.start, end: item.end }));
  }
  return parts.join(" · ");
}

const docPath = (docId) => `${kbPath(state.kb)}/documents/${encodeURIComponent(docId)}`;

/** The source dialog for a citation (or a retrieved hit); `claim` is the answer sentence citing it. */
export async function openCitation(citation, claim = "") {
  $("cite-title").textContent = t("sourceN", { n: citation.n }) + (citation.title ? ` — ${citation.title}` : "");
  $("cite-file").textContent = basename(citation.source);
  $("cite-file").title = citation.source || "";
  $("cite-location").textContent = locationOf(citation) || "—";
  $("cite-score").textContent = typeof citation.score === "number" ? citation.score.toFixed(3) : "—";
  $("cite-snippet").textContent = citation.snippet || "";
  $("cite-before").replaceChildren();
  $("cite-after").replaceChildren();
  const open = $("cite-open-doc");
  open.disabled = true;
  open.onclick = null;
  const dialog = $("cite-dialog");
  dialog.dataset.loaded = "false";
  if (!dialog.open) dialog.showModal();
  try {
    const query = new URLSearchParams({ claim: claim.slice(0, 4000), neighbours: "1" });
    const context = await getJson(`${kbPath(state.kb)}/chunks/${encodeURIComponent(citation.chunk_id)}?${query}`);
    const chunk = context.chunk;
    const [from, to] = context.highlight || [null, null];
    $("cite-snippet").replaceChildren(...marked(chunk.text, from, to, { "data-testid": "cite-highlight" }));
    $("cite-before").replaceChildren(...context.before.map((n) => el("p", { text: n.text })));
    $("cite-after").replaceChildren(...context.after.map((n) => el("p", { text: n.text })));
    $("cite-location").textContent = [locationOf(chunk), t("chunkN", { n: chunk.index + 1 })].filter(Boolean).join(" · ");
    open.disabled = false;
    open.onclick = () => {
      dialog.close();
      const highlight = context.highlight ? [chunk.start + from, chunk.start + to] : null;
      openDocument(chunk.doc_id, chunk.name, { chunk: chunk.index, passage: [chunk.start, chunk.end], highlight });
    };
  } catch (error) {
    showError(error); // the snippet stays: the chunk may have been replaced since the answer
  } finally {
    dialog.dataset.loaded = "true";
  }
}

// The document dialog: what it shows now, so Text/Chunks and the pagers know where they are.
const view = { docId: "", name: "", mode: "text", chunk: 0, passage: null, highlight: null, offset: 0, total: 0 };

/** Opens a document: its text around `chunk` with `passage` (and `highlight` in it) marked, or its chunks. */
export function openDocument(docId, name, options = {}) {
  Object.assign(view, { docId, name, passage: null, highlight: null, chunk: 0, offset: 0, mode: "text" }, options);
  $("doc-title").textContent = basename(name);
  const dialog = $("doc-dialog");
  if (!dialog.open) dialog.showModal();
  return showMode(view.mode);
}

export function showMode(mode) {
  view.mode = mode;
  $("doc-mode-text").setAttribute("aria-pressed", String(mode === "text"));
  $("doc-mode-chunks").setAttribute("aria-pressed", String(mode === "chunks"));
  return (mode === "text" ? loadText(view.chunk) : loadChunks(view.offset || Math.max(0, view.chunk - 2))).catch(showError);
}

async function loadText(centre) {
  const body = $("doc-body");
  body.dataset.loaded = "false";
  const query = new URLSearchParams({ chunk: String(Math.max(0, centre)), radius: String(TEXT_RADIUS) });
  const text = await getJson(`${docPath(view.docId)}/text?${query}`);
  view.chunk = centre;
  view.total = text.total_chunks;
  const pre = el("div", { className: "doc-text", "data-testid": "doc-text" }, ...passageNodes(text));
  const earlier = el("button", {
    type: "button", className: "ghost small", "data-testid": "doc-earlier", text: t("earlier"),
    hidden: text.first_chunk === 0, onclick: () => loadText(text.first_chunk - TEXT_RADIUS - 1).catch(showError),
  });
  const later = el("button", {
    type: "button", className: "ghost small", "data-testid": "doc-later", text: t("later"),
    hidden: text.last_chunk >= text.total_chunks - 1,
    onclick: () => loadText(text.last_chunk + TEXT_RADIUS + 1).catch(showError),
  });
  const caption = t("documentText", { first: text.first_chunk + 1, last: text.last_chunk + 1, total: text.total_chunks });
  body.replaceChildren(el("p", { className: "muted small-print", text: caption }), earlier, pre, later);
  body.dataset.loaded = "true";
  const mark = pre.querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "center" });
}

/** The text's nodes, the passage in a <mark> and its supporting sentence in a <strong> inside it. */
function passageNodes(text) {
  const local = (span) => (span ? [span[0] - text.offset, span[1] - text.offset] : null);
  const passage = local(view.passage);
  if (!passage || passage[1] <= 0 || passage[0] >= text.text.length) return [text.text];
  const [start, end] = [Math.max(0, passage[0]), Math.min(text.text.length, passage[1])];
  const inner = text.text.slice(start, end);
  const highlight = local(view.highlight);
  const mark = el(
    "mark",
    { className: "passage", "data-testid": "doc-passage" },
    ...(highlight
      ? marked(inner, highlight[0] - start, highlight[1] - start, { className: "support", "data-testid": "doc-highlight" })
      : [inner]),
  );
  return [text.text.slice(0, start), mark, text.text.slice(end)];
}

async function loadChunks(offset) {
  const body = $("doc-body");
  body.dataset.loaded = "false";
  const page = await getJson(`${docPath(view.docId)}/chunks?offset=${Math.max(0, offset)}&limit=${CHUNK_PAGE}`);
  view.offset = page.offset;
  const cards = page.chunks.map((chunk) => {
    const meta = Object.entries(chunk.metadata || {}).filter(([name]) => !["title", "doc_id"].includes(name));
    return el(
      "article",
      { className: `chunk-card${chunk.index === view.chunk && view.passage ? " current" : ""}`, "data-testid": "chunk-card" },
      el("h3", { text: [t("chunkN", { n: chunk.index + 1 }), locationOf(chunk)].filter(Boolean).join(" · ") }),
      meta.length
        ? el("dl", { className: "chunk-meta" }, ...meta.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]))
        : null,
      el("p", { className: "chunk-text", text: chunk.text }),
    );
  });
  const pager = el(
    "div",
    { className: "pager" },
    el("button", {
      type: "button", className: "ghost small", text: t("previous"), disabled: page.offset === 0,
      onclick: () => loadChunks(page.offset - CHUNK_PAGE).catch(showError),
    }),
    el("span", {
      className: "muted",
      text: t("pageRange", { from: page.offset + 1, to: page.offset + page.chunks.length, total: page.total }),
    }),
    el("button", {
      type: "button", className: "ghost small", text: t("next"), disabled: page.offset + CHUNK_PAGE >= page.total,
      onclick: () => loadChunks(page.offset + CHUNK_PAGE).catch(showError),
    }),
  );
  body.replaceChildren(pager, ...cards);
  body.dataset.loaded = "true";
}
