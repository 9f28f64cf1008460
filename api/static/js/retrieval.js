// Retrieval testing: the search endpoint with the API's own filters; ranked chunks with their scores.
import { sendJson } from "./api.js";
import { $, basename, el, kbPath } from "./dom.js";
import { locationOf, openCitation } from "./sources.js";
import { clearError, showError, state } from "./state.js";
import { t } from "./strings.js";

export function initRetrieval() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search().catch(showError);
  });
}

export function clearRetrieval() {
  $("search-results").replaceChildren();
  $("search-summary").textContent = "";
}

async function search() {
  const query = $("search-query").value.trim();
  if (!query) return;
  if (!state.kb) {
    showError(t("pickKbFirst"));
    return;
  }
  let filters = null;
  const written = $("search-filters").value.trim();
  if (written) {
    try {
      filters = JSON.parse(written);
    } catch (error) {
      showError(t("badFilters", { message: error.message }));
      return;
    }
  }
  clearError();
  const top_k = Number($("search-top-k").value) || 5;
  const result = await sendJson("POST", `${kbPath(state.kb)}/search`, { query, top_k, filters });
  $("search-summary").textContent = result.hits.length ? t("searchLanguage", { language: result.language }) : t("noHits");
  $("search-results").replaceChildren(
    ...result.hits.map((hit) =>
      el(
        "li",
        { className: "hit", "data-testid": "search-hit" },
        el(
          "div",
          { className: "hit-head" },
          el("span", { className: "hit-rank", text: `#${hit.n}` }),
          el("span", { className: "hit-score", "data-testid": "search-score", text: hit.score.toFixed(3) }),
          el("button", {
            type: "button", className: "link hit-file", "data-testid": "search-open", text: basename(hit.source),
            onclick: () => openCitation(hit, query),
          }),
          el("span", { className: "muted", text: locationOf(hit) }),
        ),
        el("p", { className: "hit-text", text: hit.snippet }),
      ),
    ),
  );
}
