// rag-kb web page: knowledge bases, uploads, documents and a streaming, cited chat over the HTTP API.
// Plain DOM code, no framework. Every text that comes from the server (document names, snippets,
// answers, error messages) is hostile input: it only ever goes into textContent or attributes.
"use strict";

(() => {
  // ---- UI strings: the one table ------------------------------------------------------------------
  const STRINGS = {
    en: {
      tagline: "Cited answers from your documents",
      apiKey: "API key",
      apiKeySet: "API key ✓",
      dismiss: "Dismiss",
      knowledgeBase: "Knowledge base",
      noKb: "— no knowledge base —",
      kbOption: "{name} ({documents} docs)",
      newKbName: "New knowledge base name",
      create: "Create",
      delete: "Delete",
      confirmDeleteKb: "Delete the knowledge base “{name}” and all of its documents?",
      confirmDeleteDoc: "Delete the document “{name}”?",
      pickKbFirst: "Create or pick a knowledge base first.",
      upload: "Upload",
      dropHint: "Drop files here or click to choose",
      uploading: "Uploading {count} file(s)… {percent}%",
      jobStatus: "Ingest {status}: {done} of {total} file(s)",
      jobQueued: "queued",
      jobRunning: "running",
      jobDone: "done",
      jobFailed: "failed",
      pending: "pending",
      added: "added",
      updated: "updated",
      unchanged: "unchanged",
      failed: "failed",
      refused: "refused",
      ready: "ready",
      chunkCount: "{count} chunk(s)",
      documents: "Documents",
      noDocuments: "No documents yet.",
      name: "Name",
      chunks: "Chunks",
      status: "Status",
      actions: "Actions",
      deleteDoc: "Delete {name}",
      chat: "Chat",
      chatEmpty: "Ask a question about the documents in this knowledge base.",
      question: "Question",
      questionPlaceholder: "Ask a question… (Enter to send, Shift+Enter for a new line)",
      ask: "Ask",
      newChat: "New chat",
      you: "You",
      assistant: "rag-kb",
      thinking: "Searching the knowledge base…",
      notInKb: "Not in the knowledge base",
      sources: "Sources",
      closestSources: "Closest passages found",
      noSources: "No passages were found.",
      removedNote: "{count} unsupported sentence(s) removed.",
      showSource: "Show source {n}",
      sourceN: "Source [{n}]",
      file: "File",
      location: "Location",
      score: "Score",
      page: "page {page}",
      lines: "lines {start}–{end}",
      chars: "characters {start}–{end}",
      close: "Close",
      keyHelp: "This server needs an API key. It is kept in this browser only.",
      keyRejected: "The server refused the API key ({message}). Enter another one.",
      clearKey: "Clear key",
      cancel: "Cancel",
      save: "Save",
      streamEnded: "The answer stream ended without an answer.",
      networkError: "The server could not be reached.",
      requestFailed: "Request failed: {status}",
    },
    zh: {
      tagline: "基于文档、附带引用的回答",
      apiKey: "API 密钥",
      apiKeySet: "API 密钥 ✓",
      dismiss: "关闭",
      knowledgeBase: "知识库",
      noKb: "— 没有知识库 —",
      kbOption: "{name}（{documents} 个文档）",
      newKbName: "新知识库名称",
      create: "创建",
      delete: "删除",
      confirmDeleteKb: "删除知识库“{name}”及其全部文档？",
      confirmDeleteDoc: "删除文档“{name}”？",
      pickKbFirst: "请先创建或选择一个知识库。",
      upload: "上传",
      dropHint: "把文件拖到这里，或点击选择",
      uploading: "正在上传 {count} 个文件… {percent}%",
      jobStatus: "导入{status}：{done}/{total} 个文件",
      jobQueued: "排队中",
      jobRunning: "进行中",
      jobDone: "完成",
      jobFailed: "失败",
      pending: "等待中",
      added: "已添加",
      updated: "已更新",
      unchanged: "未变化",
      failed: "失败",
      refused: "已拒绝",
      ready: "就绪",
      chunkCount: "{count} 个片段",
      documents: "文档",
      noDocuments: "还没有文档。",
      name: "名称",
      chunks: "片段",
      status: "状态",
      actions: "操作",
      deleteDoc: "删除 {name}",
      chat: "问答",
      chatEmpty: "就该知识库中的文档提问。",
      question: "问题",
      questionPlaceholder: "输入问题…（回车发送，Shift+回车换行）",
      ask: "提问",
      newChat: "新对话",
      you: "你",
      assistant: "rag-kb",
      thinking: "正在检索知识库…",
      notInKb: "知识库中没有",
      sources: "来源",
      closestSources: "最接近的段落",
      noSources: "没有找到相关段落。",
      removedNote: "已删除 {count} 个没有依据的句子。",
      showSource: "查看来源 {n}",
      sourceN: "来源 [{n}]",
      file: "文件",
      location: "位置",
      score: "相关度",
      page: "第 {page} 页",
      lines: "第 {start}–{end} 行",
      chars: "第 {start}–{end} 个字符",
      close: "关闭",
      keyHelp: "此服务需要 API 密钥，密钥只保存在本浏览器中。",
      keyRejected: "服务器拒绝了该 API 密钥（{message}），请输入其他密钥。",
      clearKey: "清除密钥",
      cancel: "取消",
      save: "保存",
      streamEnded: "回答流结束了，但没有收到回答。",
      networkError: "无法连接服务器。",
      requestFailed: "请求失败：{status}",
    },
  };

  const STORE = { lang: "rag-kb.lang", key: "rag-kb.apiKey", kb: "rag-kb.kb" };
  const JOB_STATUS_KEY = { queued: "jobQueued", running: "jobRunning", done: "jobDone", failed: "jobFailed" };
  const POLL_MS = 400;

  const state = {
    lang: initialLanguage(),
    kbs: [],
    kb: localStorage.getItem(STORE.kb) || "",
    documents: [],
    job: null,
    history: [],
    asking: false,
  };

  const $ = (id) => document.getElementById(id);

  function initialLanguage() {
    const saved = localStorage.getItem(STORE.lang);
    if (saved === "en" || saved === "zh") return saved;
    return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function t(key, params = {}) {
    const text = STRINGS[state.lang][key] ?? STRINGS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const basename = (path) => String(path || "").split(/[\\/]/).filter(Boolean).pop() || String(path || "");
  const kbPath = (kb) => `/kbs/${encodeURIComponent(kb)}`;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- errors ---------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** The human sentence of an error response: the contract's error.message, else FastAPI's detail. */
  function errorText(status, body) {
    let data = null;
    try {
      data = JSON.parse(body);
    } catch {
      // not JSON: fall through to the status line
    }
    if (data && typeof data === "object") {
      if (data.error && typeof data.error.message === "string") return data.error.message;
      if (typeof data.detail === "string") return data.detail;
      if (Array.isArray(data.detail) && data.detail.length) {
        return data.detail.map((item) => (item && item.msg) || JSON.stringify(item)).join("; ");
      }
      if (typeof data.message === "string") return data.message;
    }
    return t("requestFailed", { status });
  }

  function showError(error) {
    const message = error instanceof Error ? error.message : String(error);
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  // ---- API key --------------------------------------------------------------------------------------
  const apiKey = () => localStorage.getItem(STORE.key) || "";
  let keyPrompt = null; // one dialog at a time; concurrent 401s wait for the same answer

  function authHeaders() {
    const key = apiKey();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  /** Opens the key dialog; resolves true once a key is saved, false when cancelled or cleared. */
  function requestKey(reason) {
    if (keyPrompt) return keyPrompt;
    const dialog = $("key-dialog");
    $("key-reason").textContent = reason || t("keyHelp");
    $("key-input").value = apiKey();
    keyPrompt = new Promise((resolve) => {
      const finish = (saved) => {
        dialog.removeEventListener("close", onClose);
        keyPrompt = null;
        renderKeyButton();
        resolve(saved);
      };
      const onClose = () => finish(dialog.returnValue === "saved");
      dialog.addEventListener("close", onClose);
    });
    dialog.returnValue = "";
    dialog.showModal();
    $("key-input").focus();
    return keyPrompt;
  }

  function renderKeyButton() {
    $("key-button").textContent = apiKey() ? t("apiKeySet") : t("apiKey");
  }

  /** fetch() with the key; a 401 asks for a key and retries. Non-2xx responses throw ApiError. */
  async function request(method, path, body) {
    for (;;) {
      const headers = { ...authHeaders() };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch {
        throw new ApiError(t("networkError"), 0);
      }
      if (response.ok) return response;
      const message = errorText(response.status, await response.text());
      if (response.status === 401 && (await requestKey(apiKey() ? t("keyRejected", { message }) : t("keyHelp")))) {
        continue;
      }
      throw new ApiError(message, response.status);
    }
  }

  const getJson = async (path) => (await request("GET", path)).json();
  const sendJson = async (method, path, body) => (await request(method, path, body)).json();

  // ---- knowledge bases ------------------------------------------------------------------------------
  async function loadKbs() {
    state.kbs = await getJson("/kbs");
    if (!state.kbs.some((kb) => kb.name === state.kb)) state.kb = state.kbs.length ? state.kbs[0].name : "";
    renderKbs();
    await loadDocuments();
  }

  function renderKbs() {
    const select = $("kb-select");
    select.replaceChildren();
    if (!state.kbs.length) select.append(el("option", { value: "", text: t("noKb") }));
    for (const kb of state.kbs) {
      select.append(el("option", { value: kb.name, text: t("kbOption", { name: kb.name, documents: kb.documents }) }));
    }
    select.value = state.kb;
    select.disabled = !state.kbs.length;
    $("kb-delete").disabled = !state.kb;
    document.body.dataset.kb = state.kb;
    if (state.kb) localStorage.setItem(STORE.kb, state.kb);
  }

  async function selectKb(name) {
    if (name === state.kb) return;
    state.kb = name;
    state.job = null;
    renderJob();
    clearChat();
    renderKbs();
    await loadDocuments();
  }

  async function createKb(event) {
    event.preventDefault();
    const input = $("kb-name");
    const name = input.value.trim();
    if (!name) return;
    try {
      await sendJson("POST", "/kbs", { name });
      input.value = "";
      state.kb = name;
      clearChat();
      await loadKbs();
    } catch (error) {
      showError(error);
    }
  }

  async function deleteKb() {
    if (!state.kb || !window.confirm(t("confirmDeleteKb", { name: state.kb }))) return;
    try {
      await sendJson("DELETE", kbPath(state.kb));
      state.kb = "";
      state.job = null;
      renderJob();
      clearChat();
      await loadKbs();
    } catch (error) {
      showError(error);
    }
  }

  // ---- documents ------------------------------------------------------------------------------------
  async function loadDocuments() {
    state.documents = state.kb ? await getJson(`${kbPath(state.kb)}/documents`) : [];
    renderDocuments();
  }

  function documentName(doc) {
    return doc.name || basename(doc.source) || doc.title || doc.doc_id;
  }

  function renderDocuments() {
    const body = $("doc-list");
    body.replaceChildren();
    for (const doc of state.documents) {
      const name = documentName(doc);
      body.append(
        el(
          "tr",
          { "data-testid": "doc-row", "data-doc-id": doc.doc_id },
          el("td", { className: "doc-name", title: doc.source || name, text: name }),
          el("td", { className: "num", text: String(doc.chunks ?? "") }),
          el("td", { className: `doc-status status-${doc.status}`, text: t(doc.status) }),
          el(
            "td",
            {},
            el("button", {
              type: "button",
              className: "danger small",
              "data-testid": "doc-delete",
              "aria-label": t("deleteDoc", { name }),
              text: t("delete"),
              onclick: () => deleteDocument(doc),
            }),
          ),
        ),
      );
    }
    $("doc-table").hidden = !state.documents.length;
    $("doc-empty").hidden = Boolean(state.documents.length);
  }

  async function deleteDocument(doc) {
    if (!window.confirm(t("confirmDeleteDoc", { name: documentName(doc) }))) return;
    try {
      await sendJson("DELETE", `${kbPath(state.kb)}/documents/${encodeURIComponent(doc.doc_id)}`);
      await loadKbs();
    } catch (error) {
      showError(error);
    }
  }

  // ---- upload and ingest jobs -----------------------------------------------------------------------
  /** POSTs the files with XMLHttpRequest (fetch has no upload progress); resolves {status, body}. */
  function postFiles(kb, files, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const file of files) form.append("files", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${kbPath(kb)}/documents`);
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(Math.round((100 * event.loaded) / event.total));
      };
      xhr.onload = () => resolve({ status: xhr.status, body: xhr.responseText });
      xhr.onerror = () => reject(new ApiError(t("networkError"), 0));
      xhr.send(form);
    });
  }

  async function uploadFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    if (!state.kb) {
      showError(t("pickKbFirst"));
      return;
    }
    clearError();
    const kb = state.kb;
    const progress = $("upload-progress");
    const status = $("job-status");
    const onProgress = (percent) => {
      progress.value = percent;
      status.textContent = t("uploading", { count: files.length, percent });
    };
    progress.hidden = false;
    $("drop-zone").setAttribute("aria-busy", "true");
    try {
      for (;;) {
        onProgress(0);
        const response = await postFiles(kb, files, onProgress);
        if (response.status >= 200 && response.status < 300) {
          await followJob(kb, JSON.parse(response.body));
          return;
        }
        const message = errorText(response.status, response.body);
        if (response.status === 401 && (await requestKey(apiKey() ? t("keyRejected", { message }) : t("keyHelp")))) {
          continue;
        }
        throw new ApiError(message, response.status);
      }
    } catch (error) {
      status.textContent = "";
      showError(error);
    } finally {
      progress.hidden = true;
      $("drop-zone").removeAttribute("aria-busy");
    }
  }

  /** Shows the job and polls it until it is done or failed, then refreshes the document list. */
  async function followJob(kb, job) {
    state.job = job;
    renderJob();
    while (state.job && state.job.job_id && !["done", "failed"].includes(state.job.status)) {
      await sleep(POLL_MS);
      if (kb !== state.kb) return; // the user moved to another KB; its list is loaded already
      state.job = await getJson(`${kbPath(kb)}/jobs/${encodeURIComponent(job.job_id)}`);
      renderJob();
    }
    if (state.job && state.job.error) showError(state.job.error);
    if (kb === state.kb) await loadKbs();
  }

  function renderJob() {
    const list = $("job-files");
    const status = $("job-status");
    list.replaceChildren();
    const job = state.job;
    if (!job) {
      status.textContent = "";
      delete status.dataset.status;
      return;
    }
    status.dataset.status = job.status;
    status.textContent = t("jobStatus", {
      status: t(JOB_STATUS_KEY[job.status] || job.status),
      done: job.done_files ?? 0,
      total: job.total_files ?? (job.files || []).length,
    });
    for (const file of job.files || []) {
      const item = el(
        "li",
        { "data-testid": "job-file", "data-outcome": file.outcome },
        el("span", { className: "job-file-name", text: basename(file.name) }),
        el("span", { className: `badge outcome-${file.outcome}`, text: t(file.outcome) }),
      );
      if (file.chunks) item.append(el("span", { className: "muted", text: t("chunkCount", { count: file.chunks }) }));
      if (file.reason) item.append(el("span", { className: "reason", "data-testid": "job-reason", text: file.reason }));
      list.append(item);
    }
  }

  // ---- chat -----------------------------------------------------------------------------------------
  const answers = new WeakMap(); // assistant message element -> its Answer, to re-render on a language change

  /** Server-sent events from a fetch() body; an event may arrive split across any number of reads. */
  async function* readEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let carry = ""; // a trailing "\r" may be the first half of "\r\n"
    for (;;) {
      const { value, done } = await reader.read();
      let text = carry + decoder.decode(value || new Uint8Array(), { stream: !done });
      carry = "";
      if (!done && text.endsWith("\r")) {
        carry = "\r";
        text = text.slice(0, -1);
      }
      buffer += text.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
      }
      if (done) {
        const event = parseEvent(buffer);
        if (event) yield event;
        return;
      }
    }
  }

  function parseEvent(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { type, data: data.join("\n") } : null;
  }

  function scrollChat() {
    const log = $("chat-log");
    log.scrollTop = log.scrollHeight;
  }

  function clearChat() {
    state.history = [];
    $("chat-log").replaceChildren($("chat-empty") || el("p", { id: "chat-empty", className: "muted" }));
    $("chat-empty").textContent = t("chatEmpty");
    $("chat-empty").hidden = false;
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

  async function ask(event) {
    event.preventDefault();
    const input = $("question");
    const question = input.value.trim();
    if (!question || state.asking) return;
    if (!state.kb) {
      showError(t("pickKbFirst"));
      return;
    }
    clearError();
    state.asking = true;
    $("ask-button").disabled = true;
    input.value = "";
    const history = state.history.slice();
    addMessage("user", question);
    const message = addMessage("assistant", "");
    message.dataset.state = "streaming";
    const text = message.querySelector(".msg-text");
    text.append(el("span", { className: "muted", text: t("thinking") }));
    try {
      const response = await request("POST", `${kbPath(state.kb)}/ask`, { question, history, stream: true });
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
      state.history.push({ role: "user", content: question }, { role: "assistant", content: answer.answer });
    } catch (error) {
      message.dataset.state = "error";
      message.classList.add("msg-error");
      text.textContent = error.message;
      showError(error);
    } finally {
      state.asking = false;
      $("ask-button").disabled = false;
      scrollChat();
      input.focus();
    }
  }

  /** Replaces the streamed text with the verified answer: [n] markers become buttons opening the source. */
  function renderAnswer(message, answer) {
    answers.set(message, answer);
    message.dataset.state = "done";
    message.dataset.answerable = String(Boolean(answer.answerable));
    message.classList.toggle("refused", !answer.answerable);
    message.querySelector(".msg-who").textContent = t("assistant");
    for (const old of message.querySelectorAll(".refusal-badge, .sources, .removed-note")) old.remove();

    const text = message.querySelector(".msg-text");
    text.replaceChildren();
    const cited = new Map((answer.citations || []).map((citation) => [citation.n, citation]));
    const marker = /\[(\d+)\]/g;
    let last = 0;
    for (let match; (match = marker.exec(answer.answer)); ) {
      const citation = cited.get(Number(match[1]));
      if (!citation) continue; // an unknown number stays plain text
      text.append(answer.answer.slice(last, match.index), citeButton(citation));
      last = match.index + match[0].length;
    }
    text.append(answer.answer.slice(last));

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
    const heading = answer.answerable ? t("sources") : t("closestSources");
    if (passages.length || !answer.answerable) {
      const list = el("ol", { className: "source-list" });
      for (const passage of passages) {
        list.append(
          el(
            "li",
            {},
            el(
              "button",
              {
                type: "button",
                className: "source",
                "data-testid": "source",
                "data-n": passage.n,
                onclick: () => openCitation(passage),
              },
              el("span", { className: "source-n", text: `[${passage.n}]` }),
              el("span", { className: "source-file", text: basename(passage.source) }),
              el("span", { className: "source-loc muted", text: locationOf(passage) }),
            ),
          ),
        );
      }
      const section = el(
        "div",
        { className: "sources", "data-testid": "sources" },
        el("h3", { text: heading }),
        passages.length ? list : el("p", { className: "muted", text: t("noSources") }),
      );
      message.append(section);
    }
    scrollChat();
  }

  function citeButton(citation) {
    return el("button", {
      type: "button",
      className: "cite",
      "data-testid": "cite",
      "data-n": citation.n,
      "aria-label": t("showSource", { n: citation.n }),
      text: `[${citation.n}]`,
      onclick: () => openCitation(citation),
    });
  }

  function locationOf(citation) {
    const parts = [];
    if (citation.page !== null && citation.page !== undefined) parts.push(t("page", { page: citation.page }));
    if (citation.section) parts.push(citation.section);
    const meta = citation.metadata || {};
    if (meta.line_start !== undefined && meta.line_end !== undefined) {
      parts.push(t("lines", { start: meta.line_start, end: meta.line_end }));
    } else if (citation.start !== undefined && citation.end !== undefined) {
      parts.push(t("chars", { start: citation.start, end: citation.end }));
    }
    return parts.join(" · ");
  }

  function openCitation(citation) {
    $("cite-title").textContent = t("sourceN", { n: citation.n }) + (citation.title ? ` — ${citation.title}` : "");
    $("cite-file").textContent = basename(citation.source);
    $("cite-file").title = citation.source || "";
    $("cite-location").textContent = locationOf(citation) || "—";
    $("cite-score").textContent = typeof citation.score === "number" ? citation.score.toFixed(3) : "—";
    $("cite-snippet").textContent = citation.snippet || "";
    $("cite-dialog").showModal();
  }

  // ---- language -------------------------------------------------------------------------------------
  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    }
    const toggle = $("lang-toggle");
    toggle.textContent = state.lang === "zh" ? "English" : "中文";
    toggle.lang = state.lang === "zh" ? "en" : "zh";
    renderKeyButton();
    renderKbs();
    renderDocuments();
    renderJob();
    for (const message of document.querySelectorAll(".msg")) {
      const answer = answers.get(message);
      if (answer) renderAnswer(message, answer);
      else message.querySelector(".msg-who").textContent = message.classList.contains("msg-user") ? t("you") : t("assistant");
    }
  }

  function toggleLanguage() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(STORE.lang, state.lang);
    applyLanguage();
  }

  // ---- wiring ---------------------------------------------------------------------------------------
  function wire() {
    $("error-close").addEventListener("click", clearError);
    $("lang-toggle").addEventListener("click", toggleLanguage);
    $("kb-select").addEventListener("change", (event) => selectKb(event.target.value).catch(showError));
    $("kb-form").addEventListener("submit", createKb);
    $("kb-delete").addEventListener("click", deleteKb);

    const zone = $("drop-zone");
    const input = $("file-input");
    zone.addEventListener("click", () => input.click());
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        input.click();
      }
    });
    input.addEventListener("click", (event) => event.stopPropagation());
    input.addEventListener("change", async () => {
      const files = Array.from(input.files);
      input.value = ""; // choosing the same file again still fires change
      await uploadFiles(files);
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      uploadFiles(event.dataTransfer && event.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser navigate away from the page.
    for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());

    $("ask-form").addEventListener("submit", ask);
    $("question").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("chat-clear").addEventListener("click", clearChat);

    $("key-button").addEventListener("click", async () => {
      if (await requestKey(t("keyHelp"))) loadKbs().catch(showError);
    });
    $("key-form").addEventListener("submit", (event) => {
      const key = $("key-input").value.trim();
      if (key) localStorage.setItem(STORE.key, key);
      else localStorage.removeItem(STORE.key);
      event.preventDefault();
      $("key-dialog").close(key ? "saved" : "");
    });
    $("key-clear").addEventListener("click", () => {
      localStorage.removeItem(STORE.key);
      $("key-input").value = "";
      $("key-dialog").close("");
    });
    $("key-cancel").addEventListener("click", () => $("key-dialog").close(""));
  }

  async function start() {
    wire();
    applyLanguage();
    try {
      await loadKbs();
    } catch (error) {
      showError(error);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();
