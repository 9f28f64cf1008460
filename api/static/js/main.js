// rag-kb web page: wiring. Native ES modules, no build step; see the other modules for each part.
import { ApiError, apiKey, checkKey, getJson, onKeyNeeded, sendJson, storeKey } from "./api.js";
import { ask, asking, showMessages, stop, translateMessages } from "./chat.js";
import { initConversations, loadConversations, renderConversations, startConversation } from "./conversations.js";
import { $, el, kbPath } from "./dom.js";
import { initDocuments, loadDocuments, renderDocuments, resetDocuments } from "./documents.js";
import { clearRetrieval, initRetrieval } from "./retrieval.js";
import { showMode } from "./sources.js";
import { canWrite, clearError, setKb, showError, showNotice, state, whileWriting } from "./state.js";
import { language, setLanguage, t, translatePage } from "./strings.js";
import { initUploads, loadJobs, renderJobs, uploadFiles } from "./uploads.js";

const PHONE = window.matchMedia("(max-width: 720px)");

// ---- API key: checked with the server before it is kept; controls it may not use are disabled ----------
let keyPrompt = null; // one dialog at a time; concurrent 401s wait for the same answer

function requestKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason || t("keyHelp");
  $("key-input").value = apiKey();
  $("key-input").disabled = false;
  $("key-save").disabled = false;
  keyPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        keyPrompt = null;
        applyKey();
        resolve(dialog.returnValue === "saved");
      },
      { once: true },
    );
  });
  dialog.returnValue = "";
  dialog.showModal();
  $("key-input").focus();
  return keyPrompt;
}

async function saveKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  $("key-reason").textContent = t("keyChecking");
  $("key-save").disabled = true;
  try {
    state.key = await checkKey(key);
    storeKey(key);
    $("key-dialog").close("saved");
  } catch (error) {
    $("key-reason").textContent =
      error instanceof ApiError && error.status === 401 ? t("keyRejected", { message: error.message }) : error.message;
  } finally {
    $("key-save").disabled = false;
  }
}

/** What the stored key may do (asks for one when the server wants it). */
async function loadKey() {
  try {
    state.key = await checkKey(apiKey());
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    state.key = null;
    await requestKey(apiKey() ? t("keyRejected", { message: error.message }) : t("keyHelp"));
  }
  applyKey();
}

function openKeyDialog() {
  if (state.key && !state.key.keys_required) {
    const dialog = $("key-dialog");
    $("key-reason").textContent = t("keyNotNeeded");
    $("key-input").value = "";
    $("key-input").disabled = true;
    $("key-save").disabled = true;
    dialog.returnValue = "";
    dialog.showModal();
    return;
  }
  requestKey(t("keyHelp")).then((saved) => saved && loadKbs().catch(showError));
}

function applyKey() {
  const key = state.key;
  const button = $("key-button");
  const keyed = key && key.keys_required && apiKey();
  const access = keyed ? t(key.access === "write" ? "accessWrite" : "accessRead") : "";
  if (key && !key.keys_required) button.textContent = t("noKeyNeeded");
  else button.textContent = keyed ? t("apiKeySet", { access }) : t("apiKey");
  button.title = keyed ? t("keyAccess", { access, kbs: key.kbs.includes("*") ? t("allKbs") : key.kbs.join(", ") }) : "";
  const readOnly = key && key.keys_required && key.access !== "write";
  $("kb-name").disabled = Boolean(readOnly);
  $("kb-create").disabled = Boolean(readOnly);
  applyWriteControls();
}

/** Write controls follow the key's rights on the selected KB. */
function applyWriteControls() {
  const writable = canWrite() && Boolean(state.kb);
  $("kb-delete").disabled = !writable;
  $("file-input").disabled = !writable;
  $("drop-zone").setAttribute("aria-disabled", String(!writable));
  $("readonly-note").hidden = !state.kb || canWrite();
  renderDocuments();
}

// ---- knowledge bases ------------------------------------------------------------------------------------
async function loadKbs(changed = false) {
  state.kbs = await getJson("/kbs");
  const kept = state.kbs.some((kb) => kb.name === state.kb);
  const previous = state.kb;
  setKb(kept ? state.kb : state.kbs.length ? state.kbs[0].name : "");
  renderKbs();
  if (state.kb !== previous) resetDocuments();
  await loadKbContents(changed || state.kb !== previous || !loadedOnce);
}

let loadedOnce = false;

/** The selected KB's documents (and, when it changed, its jobs and conversations). */
async function loadKbContents(changed) {
  applyWriteControls();
  const parts = [loadDocuments()];
  if (changed) parts.push(loadJobs(), loadConversations());
  loadedOnce = true;
  await Promise.all(parts);
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
}

async function selectKb(name) {
  if (name === state.kb || asking()) {
    $("kb-select").value = state.kb;
    return;
  }
  setKb(name);
  resetDocuments();
  clearRetrieval();
  renderKbs();
  await loadKbContents(true);
}

async function createKb(event) {
  event.preventDefault();
  const input = $("kb-name");
  const name = input.value.trim();
  if (!name) return;
  try {
    const created = await sendJson("POST", "/kbs", { name });
    input.value = "";
    if (!created.created) showNotice(t("kbExists", { name }));
    await selectAfterChange(name);
  } catch (error) {
    showError(error);
  }
}

async function selectAfterChange(name) {
  state.kbs = await getJson("/kbs");
  renderKbs();
  await selectKb(name);
  renderKbs();
}

async function deleteKb() {
  if (!state.kb || !window.confirm(t("confirmDeleteKb", { name: state.kb }))) return;
  try {
    await whileWriting(() => sendJson("DELETE", kbPath(state.kb)));
    localStorage.removeItem(`rag-kb.conversation.${state.kb}`);
    setKb("");
    await loadKbs(true);
  } catch (error) {
    showError(error);
  }
}

// ---- language, tabs, phone panel ------------------------------------------------------------------------
function applyLanguage() {
  translatePage();
  const toggle = $("lang-toggle");
  toggle.textContent = language() === "zh" ? "English" : "中文";
  toggle.lang = language() === "zh" ? "en" : "zh";
  applyKey();
  renderKbs();
  renderJobs();
  renderConversations();
  translateMessages();
}

function showTab(name) {
  for (const tab of ["chat", "search"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`${tab}-panel`).hidden = tab !== name;
  }
}

function foldPanel() {
  $("side-panel").open = !PHONE.matches;
}

// ---- wiring ---------------------------------------------------------------------------------------------
function wire() {
  $("error-close").addEventListener("click", clearError);
  $("notice-close").addEventListener("click", () => ($("notice").hidden = true));
  $("lang-toggle").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    applyLanguage();
  });
  $("kb-select").addEventListener("change", (event) => selectKb(event.target.value).catch(showError));
  $("kb-form").addEventListener("submit", createKb);
  $("kb-delete").addEventListener("click", deleteKb);

  const zone = $("drop-zone");
  const input = $("file-input");
  const writable = () => !input.disabled;
  zone.addEventListener("click", () => writable() && input.click());
  zone.addEventListener("keydown", (event) => {
    if ((event.key === "Enter" || event.key === " ") && writable()) {
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
      if (writable()) zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (writable()) uploadFiles(event.dataTransfer && event.dataTransfer.files);
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
  $("stop-button").addEventListener("click", stop);
  $("chat-clear").addEventListener("click", () => !asking() && startConversation());
  $("tab-chat").addEventListener("click", () => showTab("chat"));
  $("tab-search").addEventListener("click", () => showTab("search"));
  $("doc-mode-text").addEventListener("click", () => showMode("text"));
  $("doc-mode-chunks").addEventListener("click", () => showMode("chunks"));

  $("key-button").addEventListener("click", openKeyDialog);
  $("key-form").addEventListener("submit", saveKey);
  $("key-clear").addEventListener("click", () => {
    storeKey("");
    $("key-input").value = "";
    $("key-dialog").close("");
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close(""));
  PHONE.addEventListener("change", foldPanel);

  onKeyNeeded(requestKey);
  initConversations(showMessages);
  initDocuments(() => loadKbs());
  initUploads(() => loadKbs());
  initRetrieval();
}

async function start() {
  wire();
  foldPanel();
  showTab("chat");
  applyLanguage();
  try {
    await loadKey();
    await loadKbs();
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = "true";
}

start();
