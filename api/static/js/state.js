// The page's shared state, the error/notice bar, and what the current key may do.
import { getJson } from "./api.js";
import { $, sleep } from "./dom.js";
import { t } from "./strings.js";

export const state = {
  kbs: [],
  kb: localStorage.getItem("rag-kb.kb") || "",
  // From GET /whoami: {keys_required, access, kbs}; null until known.
  key: null,
};

export function setKb(name) {
  state.kb = name;
  document.body.dataset.kb = name;
  if (name) localStorage.setItem("rag-kb.kb", name);
}

/** Whether the current key may change `kb` (any KB when `kb` is a new name). */
export function canWrite(kb = state.kb) {
  const key = state.key;
  if (!key) return true; // not known yet: the server still checks every request
  return key.access === "write" && (key.kbs.includes("*") || key.kbs.includes(kb));
}

export function showError(error) {
  const message = error instanceof Error ? error.message : String(error);
  $("error-text").textContent = message;
  $("error").hidden = false;
}

/** A message that is not an error (the bar beside it, so an error is never mistaken for news). */
export function showNotice(message) {
  $("notice-text").textContent = message;
  $("notice").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

/** Runs `change` (a delete); while it takes long because another process holds the write lock, says so. */
export async function whileWriting(change) {
  let done = false;
  const watch = async () => {
    await sleep(1000);
    while (!done) {
      const { holder } = await getJson("/write-lock").catch(() => ({ holder: null }));
      if (done) break;
      if (holder) showNotice(`${t("waitingWriter")} (${holder})…`);
      await sleep(1000);
    }
  };
  watch();
  try {
    return await change();
  } finally {
    done = true;
    if ($("notice-text").textContent.startsWith(t("waitingWriter"))) $("notice").hidden = true;
  }
}
