// Uploads and their ingest jobs: one card per batch, each polled on its own, the newest first; the KB's
// recent batches (kept by the server for a week) are shown with their per-file outcomes.
import { ApiError, getJson, postFiles } from "./api.js";
import { $, basename, el, kbPath, sleep } from "./dom.js";
import { clearError, showError, state } from "./state.js";
import { t } from "./strings.js";

const POLL_MS = 400;
const SHOWN = 10;
const JOB_STATUS_KEY = { queued: "jobQueued", running: "jobRunning", done: "jobDone", failed: "jobFailed" };
let cards = []; // {id, job | null, upload: {count, percent} | null}, newest first
let onFinished = async () => {};
let localIds = 0;

export function initUploads(finished) {
  onFinished = finished;
}

const finishedJob = (job) => job && ["done", "failed"].includes(job.status);

/** The KB's recent jobs from the server; unfinished ones are followed. */
export async function loadJobs() {
  cards = [];
  renderJobs();
  if (!state.kb) return;
  const kb = state.kb;
  const jobs = await getJson(`${kbPath(kb)}/jobs?limit=${SHOWN}`);
  if (kb !== state.kb) return;
  // Uploads started while this loaded are newer and already followed: they stay first.
  const fresh = jobs.filter((job) => !cards.some((card) => card.id === job.job_id));
  const loaded = fresh.map((job) => ({ id: job.job_id, job, upload: null }));
  cards = [...cards, ...loaded];
  renderJobs();
  for (const card of loaded) if (!finishedJob(card.job)) follow(kb, card);
}

export async function uploadFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  if (!state.kb) {
    showError(t("pickKbFirst"));
    return;
  }
  clearError();
  const kb = state.kb;
  const card = { id: `local-${++localIds}`, job: null, upload: { count: files.length, percent: 0 } };
  cards.unshift(card);
  renderJobs();
  try {
    const job = await postFiles(`${kbPath(kb)}/documents`, files, (percent) => {
      card.upload.percent = percent;
      renderJobs();
    });
    Object.assign(card, { id: job.job_id, job, upload: null });
    renderJobs();
    await follow(kb, card);
  } catch (error) {
    cards = cards.filter((c) => c !== card);
    renderJobs();
    showError(error instanceof ApiError ? error : new ApiError(String(error), 0));
  }
}

/** Polls one job until it is done or failed, then refreshes the lists. */
async function follow(kb, card) {
  while (!finishedJob(card.job)) {
    await sleep(POLL_MS);
    if (kb !== state.kb || !cards.includes(card)) return; // another KB is shown now
    card.job = await getJson(`${kbPath(kb)}/jobs/${encodeURIComponent(card.job.job_id)}`);
    renderJobs();
  }
  if (card.job.error) showError(card.job.error);
  if (kb === state.kb) await onFinished();
}

export function renderJobs() {
  $("job-list").replaceChildren(...cards.slice(0, SHOWN).map(jobCard));
  $("job-list").hidden = !cards.length;
}

function jobCard(card) {
  const item = el("li", { className: "job-card", "data-testid": "job-card", "data-job-id": card.id });
  if (card.upload) {
    item.append(
      el("p", { className: "job-status", text: t("uploading", { count: card.upload.count, percent: card.upload.percent }) }),
      el("progress", { max: 100, value: card.upload.percent, "data-testid": "upload-progress" }),
    );
    return item;
  }
  const job = card.job;
  item.dataset.status = job.status;
  item.append(
    el("p", {
      className: "job-status", "data-testid": "job-status", "data-status": job.status, "aria-live": "polite",
      text: t("jobStatus", { status: t(JOB_STATUS_KEY[job.status] || job.status), done: job.done_files, total: job.total_files }),
    }),
  );
  if (job.waiting) {
    item.append(el("p", { className: "job-waiting", "data-testid": "job-waiting", title: job.waiting, text: `${t("waitingWriter")} — ${job.waiting}` }));
  }
  const files = el("ul", { className: "job-files" });
  for (const file of job.files || []) {
    const row = el(
      "li",
      { "data-testid": "job-file", "data-outcome": file.outcome },
      el("span", { className: "job-file-name", text: basename(file.name) }),
      el("span", { className: `badge outcome-${file.outcome}`, text: t(file.outcome) }),
    );
    if (file.chunks) row.append(el("span", { className: "muted", text: t("chunkCount", { count: file.chunks }) }));
    if (file.reason) row.append(el("span", { className: "reason", "data-testid": "job-reason", text: file.reason }));
    files.append(row);
  }
  item.append(files);
  return item;
}
