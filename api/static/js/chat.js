// The chat: questions streamed as answers (tokens, then the verified answer as safe Markdown with [n]
// buttons), stop, copy and regenerate; every turn saved in the open conversation.
import { ApiError, request } from "./api.js";
import { $, basename, el, kbPath } from "./dom.js";
import { addTurn, conv, ensureConversation, historyBefore } from "./conversations.js";
import { claimOf, renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";
import { locationOf, openCitation } from "./sources.js";
import { clearError, showError, state } from "./state.js";
import { t } from "./strings.js";

const answers = new WeakMap(); // assistant message element -> its Answer, to re-render on a language change
let running = null; // {controller} while an answer streams

export function scrollChat() {
  const log = $("chat-log");
  log.scrollTop = log.scrollHeight;
}

/** Shows a conversation's turns (empty: the hint). */
export function showMessages(messages) {
  $("chat-log").replaceChildren($("chat-empty"));
  $("chat-empty").hidden = messages.length > 0;
  for (const turn of messages) {
    const message = addMessage(turn.role, turn.role === "user" ? turn.content : "");
    message.dataset.seq = turn.seq;
    if (turn.role === "assistant") {
      if (turn.answer) renderAnswer(message, turn.answer);
      else {
        message.querySelector(".msg-text").textContent = turn.content;
        message.dataset.state = "done";
      }
    }
  }
  markLastAnswer();
  scrollChat();
}

function addMessage(role, text) {
  $("chat-empty").hidden = true;
  const body = el("div", { className: "msg-text", "data-testid": role === "user" ? "question-text" : "answer-text" });
  body.textContent = text;
  const message = el(
    "article",
    { className: `msg msg-${role}`, "data-testid": `message-${role}` },
    el("div", { className: "msg-who", text: role === "user" ? t("you") : t("assistant") }),
    body,
  );
  $("chat-log").append(message);
  scrollChat();
  return message;
}

export function asking() {
  return running !== null;
}

function setRunning(value) {
  running = value;
  $("ask-button").hidden = Boolean(value);
  $("stop-button").hidden = !value;
  for (const button of document.querySelectorAll("[data-testid=regenerate]")) button.disabled = Boolean(value);
}

export async function ask(event) {
  event.preventDefault();
  const input = $("question");
  const question = input.value.trim();
  if (!question || running) return;
  if (!state.kb) {
    showError(t("pickKbFirst"));
    return;
  }
  clearError();
  input.value = "";
  const history = historyBefore();
  addMessage("user", question);
  const message = addMessage("assistant", "");
  const saveQuestion = async () => {
    await ensureConversation(question);
    await addTurn("user", question);
  };
  await answerInto(message, question, history, (answer) => addTurn("assistant", answer.answer, answer), saveQuestion);
}

/** Asks again for the answer in `message`, with the history before its question; the saved answer is replaced. */
async function regenerate(message) {
  const seq = Number(message.dataset.seq);
  const question = conv.current.messages.find((m) => m.seq === seq - 1);
  if (!question || running) return;
  clearError();
  await answerInto(message, question.content, historyBefore(seq - 1), (answer) =>
    addTurn("assistant", answer.answer, answer, seq),
  );
}

/** Streams the answer to `question` into `message`; `before()` runs first (the question is saved, so it
 * survives a failed answer), `save(answer)` keeps the answer and returns the saved turn. */
async function answerInto(message, question, history, save, before = async () => {}) {
  const controller = new AbortController();
  setRunning({ controller });
  message.dataset.state = "streaming";
  message.classList.remove("msg-error", "refused");
  for (const old of message.querySelectorAll(".refusal-badge, .sources, .removed-note, .msg-actions")) old.remove();
  const text = message.querySelector(".msg-text");
  text.replaceChildren(el("span", { className: "muted", text: t("thinking") }));
  try {
    await before();
    const path = `${kbPath(state.kb)}/ask`;
    const response = await request("POST", path, { question, history, stream: true }, controller.signal);
    let answer = null;
    if ((response.headers.get("content-type") || "").includes("text/event-stream")) {
      let streamed = "";
      for await (const item of readEvents(response)) {
        if (item.type === "token") {
          streamed += JSON.parse(item.data).text;
          text.textContent = streamed;
          scrollChat();
        } else if (item.type === "answer") {
          answer = JSON.parse(item.data);
        } else if (item.type === "error") {
          throw new ApiError(JSON.parse(item.data).message, 500);
        }
      }
    } else {
      answer = await response.json(); // a server that does not stream answers in one piece
    }
    if (!answer) throw new ApiError(t("streamEnded"), 0);
    renderAnswer(message, answer);
    message.dataset.state = "saving"; // "done" once kept: the next question waits for it
    const turn = await save(answer);
    message.dataset.seq = turn.seq;
    message.dataset.state = "done";
  } catch (error) {
    if (error && error.name === "AbortError") {
      message.dataset.state = "stopped";
      text.append(el("p", { className: "muted", "data-testid": "stopped-note", text: t("stopped") }));
    } else {
      message.dataset.state = "error";
      message.classList.add("msg-error");
      text.textContent = error.message;
      showError(error);
    }
  } finally {
    setRunning(null);
    markLastAnswer();
    scrollChat();
    $("question").focus();
  }
}

export function stop() {
  if (running) running.controller.abort();
}

/** Only the newest saved answer can be regenerated (its turn is the last of the conversation). */
function markLastAnswer() {
  const all = [...document.querySelectorAll(".msg-assistant")];
  all.forEach((message, i) => {
    const button = message.querySelector("[data-testid=regenerate]");
    if (button) button.hidden = i !== all.length - 1 || message.dataset.seq === undefined;
  });
}

/** Replaces the streamed text with the verified answer: Markdown, with [n] markers as source buttons. */
export function renderAnswer(message, answer) {
  answers.set(message, answer);
  message.dataset.state = "done";
  message.dataset.answerable = String(Boolean(answer.answerable));
  message.classList.toggle("refused", !answer.answerable);
  message.querySelector(".msg-who").textContent = t("assistant");
  for (const old of message.querySelectorAll(".refusal-badge, .sources, .removed-note, .msg-actions")) old.remove();

  const text = message.querySelector(".msg-text");
  const cited = new Map((answer.citations || []).map((citation) => [citation.n, citation]));
  renderMarkdown(text, answer.answer, (n) => (cited.has(n) ? citeButton(cited.get(n), claimOf(answer.answer, n)) : null));

  if (!answer.answerable) {
    message.insertBefore(
      el("span", { className: "badge refusal-badge", "data-testid": "refusal-badge", role: "status", text: t("notInKb") }),
      text,
    );
  }
  if (answer.removed && answer.removed.length) {
    message.append(el("p", { className: "removed-note muted", text: t("removedNote", { count: answer.removed.length }) }));
  }
  const passages = answer.answerable ? answer.citations || [] : answer.sources || [];
  if (passages.length || !answer.answerable) {
    const list = el(
      "ol",
      { className: "source-list" },
      ...passages.map((passage) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button", className: "source", "data-testid": "source", "data-n": passage.n,
              onclick: () => openCitation(passage, answer.answerable ? claimOf(answer.answer, passage.n) : answer.question),
            },
            el("span", { className: "source-n", text: `[${passage.n}]` }),
            el("span", { className: "source-file", text: basename(passage.source) }),
            el("span", { className: "source-loc muted", text: locationOf(passage) }),
          ),
        ),
      ),
    );
    message.append(
      el(
        "div",
        { className: "sources", "data-testid": "sources" },
        el("h3", { text: answer.answerable ? t("sources") : t("closestSources") }),
        passages.length ? list : el("p", { className: "muted", text: t("noSources") }),
      ),
    );
  }
  message.append(actions(message, answer));
  scrollChat();
}

function actions(message, answer) {
  const copy = el("button", {
    type: "button", className: "ghost small", "data-testid": "copy", text: t("copy"),
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(answer.answer);
        copy.textContent = t("copied");
        setTimeout(() => (copy.textContent = t("copy")), 1500);
      } catch (error) {
        showError(error);
      }
    },
  });
  const again = el("button", {
    type: "button", className: "ghost small", "data-testid": "regenerate", text: t("regenerate"),
    hidden: true, disabled: Boolean(running), onclick: () => regenerate(message),
  });
  return el("div", { className: "msg-actions" }, copy, again);
}

function citeButton(citation, claim) {
  return el("button", {
    type: "button", className: "cite", "data-testid": "cite", "data-n": citation.n,
    "aria-label": t("showSource", { n: citation.n }), text: `[${citation.n}]`,
    onclick: () => openCitation(citation, claim),
  });
}

/** Re-renders every message in the current language. */
export function translateMessages() {
  for (const message of document.querySelectorAll(".msg")) {
    const answer = answers.get(message);
    if (answer) renderAnswer(message, answer);
    else message.querySelector(".msg-who").textContent = message.classList.contains("msg-user") ? t("you") : t("assistant");
  }
  markLastAnswer();
}
