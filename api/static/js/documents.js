// The document list, a page at a time: the server searches, sorts and pages (a KB may hold thousands).
import { getJson, sendJson } from "./api.js";
import { $, el, kbPath } from "./dom.js";
import { openDocument } from "./sources.js";
import { canWrite, showError, state, whileWriting } from "./state.js";
import { t } from "./strings.js";

const PAGE = 50;
export const docs = { q: "", sort: "name", order: "asc", offset: 0, total: 0, items: [] };
let onChanged = async () => {};
let requested = 0; // answers to older requests (typing fast) are dropped

/** `changed` runs after a document is deleted (the KB list's counts change). */
export function initDocuments(changed) {
  onChanged = changed;
  let timer = 0;
  $("doc-search").addEventListener("input", (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      docs.q = event.target.value.trim();
      docs.offset = 0;
      loadDocuments().catch(showError);
    }, 250);
  });
  $("doc-sort").addEventListener("change", (event) => {
    docs.sort = event.target.value;
    docs.offset = 0;
    loadDocuments().catch(showError);
  });
  $("doc-order").addEventListener("click", () => {
    docs.order = docs.order === "asc" ? "desc" : "asc";
    docs.offset = 0;
    loadDocuments().catch(showError);
  });
  $("doc-prev").addEventListener("click", () => page(-PAGE));
  $("doc-next").addEventListener("click", () => page(PAGE));
}

function page(step) {
  docs.offset = Math.max(0, docs.offset + step);
  loadDocuments().catch(showError);
}

export function resetDocuments() {
  Object.assign(docs, { q: "", offset: 0, total: 0, items: [] });
  $("doc-search").value = "";
}

export async function loadDocuments() {
  const mine = ++requested;
  if (!state.kb) {
    Object.assign(docs, { total: 0, items: [] });
  } else {
    const query = new URLSearchParams({ q: docs.q, sort: docs.sort, order: docs.order, offset: docs.offset, limit: PAGE });
    const page = await getJson(`${kbPath(state.kb)}/document-page?${query}`);
    if (mine !== requested) return;
    if (page.offset > 0 && page.offset >= page.total) {
      docs.offset = Math.max(0, page.total - PAGE); // the last page emptied: show the one before
      return loadDocuments();
    }
    Object.assign(docs, { total: page.total, items: page.items, offset: page.offset });
  }
  renderDocuments();
}

export const documentName = (doc) => doc.name || doc.title || doc.doc_id;

export function renderDocuments() {
  const writable = canWrite();
  $("doc-list").replaceChildren(
    ...docs.items.map((doc) => {
      const name = documentName(doc);
      return el(
        "tr",
        { "data-testid": "doc-row", "data-doc-id": doc.doc_id },
        el(
          "td",
          { className: "doc-name" },
          el("button", {
            type: "button", className: "link", "data-testid": "doc-open", title: doc.source || name,
            "aria-label": t("viewDoc", { name }), text: name,
            onclick: () => openDocument(doc.doc_id, name, { mode: "chunks" }),
          }),
        ),
        el("td", { className: "num", text: String(doc.chunks ?? "") }),
        el("td", { className: `doc-status status-${doc.status}`, text: t(doc.status) }),
        el(
          "td",
          {},
          el("button", {
            type: "button", className: "danger small", "data-testid": "doc-delete", disabled: !writable,
            title: writable ? null : t("readOnly"), "aria-label": t("deleteDoc", { name }), text: t("delete"),
            onclick: () => deleteDocument(doc),
          }),
        ),
      );
    }),
  );
  const any = docs.items.length > 0;
  $("doc-table").hidden = !any;
  $("doc-empty").hidden = any;
  $("doc-empty").textContent = docs.q ? t("noMatches", { q: docs.q }) : t("noDocuments");
  $("doc-tools").hidden = !state.kb || (!docs.total && !docs.q);
  $("doc-pager").hidden = docs.total <= PAGE;
  $("doc-range").textContent = any
    ? t("pageRange", { from: docs.offset + 1, to: docs.offset + docs.items.length, total: docs.total })
    : "";
  $("doc-prev").disabled = docs.offset === 0;
  $("doc-next").disabled = docs.offset + PAGE >= docs.total;
  $("doc-order").textContent = docs.order === "asc" ? "↑" : "↓";
  $("doc-order").setAttribute("aria-label", t(docs.order === "asc" ? "ascending" : "descending"));
  $("doc-sort").value = docs.sort;
}

async function deleteDocument(doc) {
  if (!window.confirm(t("confirmDeleteDoc", { name: documentName(doc) }))) return;
  try {
    await whileWriting(() => sendJson("DELETE", `${kbPath(state.kb)}/documents/${encodeURIComponent(doc.doc_id)}`));
    await onChanged();
  } catch (error) {
    showError(error);
  }
}
