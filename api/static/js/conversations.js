// Conversations kept by the server per KB: the list, and the one open now (reopened after a reload).
import { getJson, sendJson } from "./api.js";
import { $, el, kbPath } from "./dom.js";
import { showError, state } from "./state.js";
import { t } from "./strings.js";

export const conv = { list: [], current: null }; // current: {conversation_id, title, messages: [turn]}
let show = () => {}; // renders the open conversation's messages (chat.js)

const remembered = (kb) => `rag-kb.conversation.${kb}`;

export function initConversations(render) {
  show = render;
}

/** The KB's conversations; the one open last in this browser is reopened. */
export async function loadConversations() {
  Object.assign(conv, { list: [], current: null }); // the previous KB's chat goes at once
  renderConversations();
  show([]);
  const kb = state.kb;
  const list = kb ? await getJson(`${kbPath(kb)}/conversations`) : [];
  if (kb !== state.kb) return;
  // One started by a question asked while this loaded stays open, first in the list.
  const started = conv.list.filter((c) => !list.some((l) => l.conversation_id === c.conversation_id));
  conv.list = [...started, ...list];
  if (conv.current) {
    renderConversations();
    return;
  }
  const last = state.kb && localStorage.getItem(remembered(state.kb));
  if (last && conv.list.some((c) => c.conversation_id === last)) await openConversation(last);
  else startConversation();
}

export async function openConversation(id) {
  conv.current = await getJson(`${kbPath(state.kb)}/conversations/${encodeURIComponent(id)}`);
  localStorage.setItem(remembered(state.kb), id);
  renderConversations();
  show(conv.current.messages);
}

/** A new, empty conversation: created on the server with its first question. */
export function startConversation() {
  conv.current = null;
  if (state.kb) localStorage.removeItem(remembered(state.kb));
  renderConversations();
  show([]);
}

/** The open conversation's id, creating it (titled by the question) when there is none. */
export async function ensureConversation(question) {
  if (conv.current) return conv.current.conversation_id;
  const title = question.length > 80 ? `${question.slice(0, 79)}…` : question;
  const created = await sendJson("POST", `${kbPath(state.kb)}/conversations`, { title });
  conv.current = { ...created, messages: [] };
  conv.list.unshift(created);
  localStorage.setItem(remembered(state.kb), created.conversation_id);
  renderConversations();
  return created.conversation_id;
}

/** Saves a turn of the open conversation; `replaceFrom` drops the turns from that seq on first. */
export async function addTurn(role, content, answer = null, replaceFrom = null) {
  const id = conv.current.conversation_id;
  const body = { role, content, answer, replace_from: replaceFrom };
  const turn = await sendJson("POST", `${kbPath(state.kb)}/conversations/${encodeURIComponent(id)}/turns`, body);
  const messages = conv.current.messages.filter((m) => replaceFrom === null || m.seq < replaceFrom);
  conv.current.messages = [...messages, turn];
  return turn;
}

/** The turns before `seq` (all when null), as the ask request's `history`. */
export function historyBefore(seq = null) {
  const turns = (conv.current ? conv.current.messages : []).filter((m) => seq === null || m.seq < seq);
  return turns.slice(-20).map((m) => ({ role: m.role, content: m.content.slice(0, 20000) }));
}

async function rename(item, title) {
  const path = `${kbPath(state.kb)}/conversations/${encodeURIComponent(item.conversation_id)}`;
  const renamed = await sendJson("PATCH", path, { title });
  Object.assign(item, renamed);
  if (conv.current && conv.current.conversation_id === item.conversation_id) conv.current.title = renamed.title;
  renderConversations();
}

async function remove(item) {
  if (!window.confirm(t("confirmDeleteConversation", { name: item.title }))) return;
  await sendJson("DELETE", `${kbPath(state.kb)}/conversations/${encodeURIComponent(item.conversation_id)}`);
  conv.list = conv.list.filter((c) => c !== item);
  if (conv.current && conv.current.conversation_id === item.conversation_id) startConversation();
  else renderConversations();
}

function editTitle(row, item) {
  const input = el("input", { className: "conv-title-input", "data-testid": "conv-title-input", value: item.title, maxlength: 200 });
  let done = false; // Enter, then the blur of the input being replaced: save once
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== item.title) rename(item, title).catch(showError);
    else renderConversations();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    else if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true), { once: true });
  row.querySelector(".conv-open").replaceWith(input);
  input.focus();
  input.select();
}

export function renderConversations() {
  const current = conv.current && conv.current.conversation_id;
  $("conv-list").replaceChildren(
    ...conv.list.map((item) => {
      const row = el("li", { className: "conv-item", "data-testid": "conv-item", "aria-current": item.conversation_id === current ? "true" : null });
      row.append(
        el("button", {
          type: "button", className: "conv-open link", "data-testid": "conv-open", text: item.title,
          onclick: () => openConversation(item.conversation_id).catch(showError),
        }),
        el("button", {
          type: "button", className: "icon", "data-testid": "conv-rename", "aria-label": t("rename"), title: t("rename"), text: "✎",
          onclick: () => editTitle(row, item),
        }),
        el("button", {
          type: "button", className: "icon danger-text", "data-testid": "conv-delete", "aria-label": t("delete"), title: t("delete"), text: "×",
          onclick: () => remove(item).catch(showError),
        }),
      );
      return row;
    }),
  );
  $("conv-empty").hidden = conv.list.length > 0;
}
