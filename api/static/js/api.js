// The API client: one place that adds the key, and one 401-retry for fetch() and uploads alike.
import { t } from "./strings.js";

const KEY_STORE = "rag-kb.apiKey";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export const apiKey = () => localStorage.getItem(KEY_STORE) || "";

export function storeKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
}

function authHeaders(key = apiKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The human sentence of an error response: the contract's error.message, else FastAPI's detail. */
export function errorText(status, body) {
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

// Set by the page: opens the key dialog with a reason; resolves true once a checked key is saved.
let askForKey = async () => false;
export function onKeyNeeded(handler) {
  askForKey = handler;
}

/** send(headers) → {status, ok, text()}. On a 401 the user is asked for a key and it is sent once more. */
async function withKey(send) {
  let result = await send(authHeaders());
  if (result.status === 401 && (await askForKey(errorText(401, await result.text())))) {
    result = await send(authHeaders());
  }
  if (!result.ok) throw new ApiError(errorText(result.status, await result.text()), result.status);
  return result;
}

async function fetched(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(t("networkError"), 0);
  }
  let body = null;
  return {
    status: response.status,
    ok: response.ok,
    response,
    text: async () => (body ??= await response.text()),
  };
}

/** fetch() with the key; non-2xx responses throw ApiError. `signal` aborts (a stopped answer). */
export async function request(method, path, body, signal) {
  const result = await withKey((headers) =>
    fetched(path, {
      method,
      signal,
      headers: body === undefined ? headers : { ...headers, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  return result.response;
}

export const getJson = async (path) => (await request("GET", path)).json();
export const sendJson = async (method, path, body) => (await request(method, path, body)).json();

/** What `key` may do, from GET /whoami; throws ApiError (401) when the server refuses it. */
export async function checkKey(key) {
  const result = await fetched("/whoami", { headers: authHeaders(key) });
  if (!result.ok) throw new ApiError(errorText(result.status, await result.text()), result.status);
  return result.response.json();
}

/** POSTs files with XMLHttpRequest (fetch has no upload progress); the created job. */
export async function postFiles(path, files, onProgress) {
  const result = await withKey(
    (headers) =>
      new Promise((resolve, reject) => {
        const form = new FormData();
        for (const file of files) form.append("files", file, file.name);
        const xhr = new XMLHttpRequest();
        xhr.open("POST", path);
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.upload.onprogress = (event) => {
          if (event.lengthComputable) onProgress(Math.round((100 * event.loaded) / event.total));
        };
        xhr.onload = () =>
          resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, text: async () => xhr.responseText });
        xhr.onerror = () => reject(new ApiError(t("networkError"), 0));
        xhr.send(form);
      }),
  );
  return JSON.parse(await result.text());
}
