// EmojiNet web page: pick, drop or paste a photo; show its emojis and the sampled distribution.
// Plain ES module, no build step, no network beyond this server. No inline handlers (CSP).

const $ = (id) => document.getElementById(id);

const el = {
  drop: $("drop"),
  file: $("file"),
  fileName: $("file-name"),
  preview: $("preview"),
  hint: $("drop-hint"),
  results: $("results"),
  status: $("status"),
  error: $("error"),
  errorText: $("error-text"),
  retry: $("retry"),
  suggestions: $("suggestions"),
  copyAll: $("copy-all"),
  copyStatus: $("copy-status"),
  modelInfo: $("model-info"),
  distForm: $("dist-form"),
  n: $("n"),
  temperature: $("temperature"),
  temperatureValue: $("temperature-value"),
  head: $("head"),
  headField: $("head-field"),
  resample: $("resample"),
  distSummary: $("dist-summary"),
  histogram: $("histogram"),
};

const TOP_K = 5;
const DEFAULT_DRAWS = 50; // POST /distribution's default n (the field's value in index.html)
const MAX_AUTO_RETRIES = 3;

const state = {
  photo: null, // the Blob being analysed
  generation: 0, // bumps on every new photo: answers for an older photo are dropped
  names: new Map(), // emoji -> CLDR name, from GET /emojis
  suggested: [], // the last /suggest answer's emojis
  retryTimer: null,
  autoRetries: 0,
  previewUrl: null,
};

class ApiError extends Error {
  constructor(status, detail, retryAfterS) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfterS = retryAfterS;
  }

  get retryable() {
    return this.status === 429 || this.status === 503 || this.status === 0;
  }
}

// -- talking to the API -----------------------------------------------------------------------

function retryAfterSeconds(response) {
  const raw = response.headers.get("Retry-After");
  if (!raw) return null;
  const secs = Number(raw);
  if (Number.isFinite(secs)) return Math.max(0, secs);
  const date = Date.parse(raw); // the HTTP-date form
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "the EmojiNet server cannot be reached", 2);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    throw new ApiError(response.status, detail, retryAfterSeconds(response));
  }
  return body;
}

function postPhoto(path, params, photo) {
  const form = new FormData();
  form.append("image", photo, photo.name || "pasted-image");
  return request(`${path}?${new URLSearchParams(params)}`, { method: "POST", body: form });
}

// -- errors -----------------------------------------------------------------------------------

function explain(err) {
  const said = ` The server said: ${err.detail.replace(/\.$/, "")}.`;
  switch (err.status) {
    case 413:
      return `That photo is too large (or too long and thin) for this server. Try a smaller, resized or cropped copy.${said}`;
    case 415:
      return `This server doesn't read that kind of file: send a JPEG, PNG, GIF, WebP, BMP or TIFF photo.${said}`;
    case 400:
      return `That file doesn't look like an image this server can read.${said}`;
    case 429:
    case 503:
      return `The server is busy right now.${said}`;
    case 401:
      return `This server requires an API key, so this page cannot use it.${said}`;
    case 0:
      return "Cannot reach the EmojiNet server. Check that it is running and your connection works.";
    default:
      return `Something went wrong (HTTP ${err.status}).${said}`;
  }
}

function clearError() {
  if (state.retryTimer) clearInterval(state.retryTimer);
  state.retryTimer = null;
  el.error.hidden = true;
  el.retry.hidden = true;
  el.retry.onclick = null;
  el.errorText.textContent = "";
}

function showError(err, retry) {
  clearError();
  const message = explain(err);
  el.error.hidden = false;
  el.errorText.textContent = message;
  if (!err.retryable) return;
  el.retry.hidden = false;
  el.retry.onclick = () => {
    state.autoRetries = 0;
    clearError();
    retry();
  };
  if (state.autoRetries >= MAX_AUTO_RETRIES) {
    el.errorText.textContent = `${message} Retried ${MAX_AUTO_RETRIES} times; try again in a moment.`;
    return;
  }
  // Honour Retry-After (at least 1 s, at most a minute), counting down on screen.
  let left = Math.min(60, Math.max(1, Math.ceil(err.retryAfterS ?? 2)));
  const tick = () => {
    el.errorText.textContent = `${message} Retrying in ${left} s…`;
  };
  tick();
  const generation = state.generation;
  state.retryTimer = setInterval(() => {
    left -= 1;
    if (generation !== state.generation) return clearError();
    if (left > 0) return tick();
    state.autoRetries += 1;
    clearError();
    retry();
  }, 1000);
}

// -- rendering --------------------------------------------------------------------------------

function percent(p) {
  const v = p * 100;
  return v >= 10 || v === 0 ? `${v.toFixed(0)}%` : `${v.toFixed(1)}%`;
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function emojiSpan(emoji, name, className = "emoji") {
  const span = make("span", className, emoji);
  span.setAttribute("role", "img");
  span.setAttribute("aria-label", name || emoji);
  return span;
}

function renderSuggestions(answer) {
  state.suggested = answer.emojis;
  for (const e of answer.emojis) state.names.set(e.emoji, e.name);
  el.suggestions.replaceChildren(
    ...answer.emojis.map((e, i) => {
      const li = make("li", "suggestion");
      li.append(emojiSpan(e.emoji, e.name, "emoji big"));
      const body = make("div", "sugg-body");
      const label = make("div", "sugg-label");
      label.append(make("span", "name", e.name), make("span", "score", percent(e.score)));
      const bar = make("div", "bar");
      bar.setAttribute("aria-hidden", "true");
      const fill = make("span", i === 0 ? "fill best" : "fill");
      fill.style.width = `${Math.max(1, Math.min(100, e.score * 100))}%`; // CSSOM: allowed by CSP
      bar.append(fill);
      body.append(label, bar);
      const copy = make("button", "button small copy", "Copy");
      copy.type = "button";
      copy.setAttribute("aria-label", `Copy ${e.emoji} ${e.name}`);
      copy.addEventListener("click", () => copyText(e.emoji, `Copied ${e.emoji}`));
      li.append(body, copy);
      return li;
    }),
  );
  el.copyAll.disabled = answer.emojis.length === 0;
  el.status.textContent = answer.emojis.length
    ? `${answer.emojis.length} emojis from ${answer.model} in ${Math.round(answer.timing.total_ms)} ms.`
    : "No emoji scored above the threshold.";
}

function renderDistribution(d) {
  const maxCount = Math.max(1, ...d.histogram.map((h) => h.count));
  el.histogram.replaceChildren(
    ...d.histogram.map((h) => {
      const name = state.names.get(h.emoji) || h.emoji;
      const li = make("li", h.emoji === d.mode ? "hist-row mode" : "hist-row");
      li.append(emojiSpan(h.emoji, name));
      const bar = make("div", "bar");
      bar.setAttribute("aria-hidden", "true");
      const fill = make("span", "fill");
      fill.style.width = `${(100 * h.count) / maxCount}%`;
      bar.append(fill);
      const count = make("span", "count", `${h.count}`);
      count.setAttribute("aria-label", `${name}: ${h.count} of ${d.n}`);
      li.append(bar, count);
      return li;
    }),
  );
  const modeName = state.names.get(d.mode) || "";
  el.distSummary.replaceChildren();
  const mode = make("p", "mode-line");
  mode.append(
    make("span", "label", "Mode "),
    emojiSpan(d.mode, modeName, "emoji mid"),
    make("span", "mode-name", modeName),
  );
  const stability = make("p", "stability");
  stability.append(
    make("strong", "", percent(d.mode_stability)),
    ` stable: it stays the mode in ${percent(d.mode_stability)} of repeated draws.`,
  );
  const meta = make(
    "p",
    "meta",
    d.head === "gan"
      ? `${d.n} draws by the EmojiGAN generator · entropy ${d.entropy.toFixed(2)} bits`
      : `${d.n} draws at temperature ${d.temperature.toFixed(2)} · entropy ${d.entropy.toFixed(2)} bits`,
  );
  el.distSummary.append(mode, stability, meta);
}

// -- actions ----------------------------------------------------------------------------------

function temperature() {
  return 10 ** Number(el.temperature.value);
}

function drawCount() {
  const n = Math.round(Number(el.n.value));
  if (!el.n.value.trim() || !Number.isFinite(n)) return DEFAULT_DRAWS;
  return Math.min(1000, Math.max(1, n));
}

function setBusy(busy) {
  el.results.setAttribute("aria-busy", busy ? "true" : "false");
  el.resample.disabled = busy || !state.photo;
}

async function runSuggest(generation) {
  const answer = await postPhoto("suggest", { top_k: TOP_K }, state.photo);
  if (generation === state.generation) renderSuggestions(answer);
}

async function runDistribution(generation) {
  const params = { n: drawCount(), temperature: temperature().toFixed(3) };
  if (!el.headField.hidden) params.head = el.head.value;
  const answer = await postPhoto("distribution", params, state.photo);
  if (generation === state.generation) renderDistribution(answer);
}

async function run(steps) {
  const generation = state.generation;
  clearError();
  setBusy(true);
  try {
    const settled = await Promise.allSettled(steps.map((step) => step(generation)));
    if (generation !== state.generation) return;
    const failed = settled.find((s) => s.status === "rejected");
    if (!failed) {
      state.autoRetries = 0;
      return;
    }
    const err = failed.reason instanceof ApiError ? failed.reason : new ApiError(-1, String(failed.reason));
    if (steps.includes(runSuggest) && settled[0].status === "rejected") {
      el.status.textContent = "No suggestions for this photo.";
    }
    showError(err, () => run(steps));
  } finally {
    if (generation === state.generation) setBusy(false);
  }
}

function usePhoto(blob) {
  if (!blob) return;
  state.generation += 1;
  state.autoRetries = 0;
  state.photo = blob;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(blob);
  el.preview.hidden = false;
  el.preview.alt = blob.name ? `Your photo: ${blob.name}` : "Your pasted photo";
  el.preview.src = state.previewUrl;
  el.drop.classList.add("has-photo");
  el.fileName.textContent = blob.name || "Pasted image";
  el.suggestions.replaceChildren();
  el.histogram.replaceChildren();
  el.distSummary.replaceChildren();
  el.copyAll.disabled = true;
  el.copyStatus.textContent = "";
  el.status.textContent = "Looking at your photo…";
  run([runSuggest, runDistribution]);
}

let distTimer = null;
function redrawSoon() {
  if (distTimer) clearTimeout(distTimer);
  distTimer = setTimeout(() => {
    if (state.photo) run([runDistribution]);
  }, 250);
}

async function copyText(text, done) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // No clipboard API (plain http on another host): the old textarea trick.
    const area = make("textarea", "visually-hidden");
    area.value = text;
    document.body.append(area);
    area.select();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
  }
  el.copyStatus.textContent = ok ? done : `Copy failed; select and copy: ${text}`;
}

// -- wiring -----------------------------------------------------------------------------------

function firstFile(list) {
  for (const item of list || []) {
    const file = item instanceof File ? item : item.kind === "file" ? item.getAsFile() : null;
    if (file) return file;
  }
  return null;
}

el.file.addEventListener("change", () => {
  const file = el.file.files && el.file.files[0];
  if (file) usePhoto(file);
});

el.preview.addEventListener("error", () => {
  el.preview.hidden = true; // not an image the browser can show; the server will say more
  el.drop.classList.remove("has-photo");
});

for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    el.drop.classList.add("dragging");
  });
}
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) el.drop.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  el.drop.classList.remove("dragging");
  usePhoto(firstFile(event.dataTransfer && event.dataTransfer.files));
});
document.addEventListener("paste", (event) => {
  const file = firstFile(event.clipboardData && event.clipboardData.items);
  if (file) {
    event.preventDefault();
    usePhoto(file);
  }
});

el.copyAll.addEventListener("click", () => {
  const all = state.suggested.map((e) => e.emoji).join("");
  copyText(all, `Copied ${all}`);
});

el.temperature.addEventListener("input", () => {
  el.temperatureValue.textContent = temperature().toFixed(2);
});
el.temperature.addEventListener("change", redrawSoon);
el.n.addEventListener("change", redrawSoon);
el.head.addEventListener("change", () => {
  // The generator has no temperature: the slider only applies to the classifier's scores.
  el.temperature.disabled = el.head.value === "gan";
  redrawSoon();
});
el.distForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.photo) run([runDistribution]);
});

async function loadModelInfo(attempt = 0) {
  try {
    const info = await request("model");
    el.modelInfo.textContent = `Model: ${info.name} · ${info.vocab_size} emojis`;
    el.headField.hidden = !(info.gan && info.gan.loaded);
    const vocab = await request("emojis");
    for (const e of vocab.emojis) state.names.set(e.emoji, e.name);
  } catch (err) {
    if (err instanceof ApiError && err.retryable && attempt < 20) {
      el.modelInfo.textContent = "The model is loading…";
      setTimeout(() => loadModelInfo(attempt + 1), 1000 * Math.min(10, err.retryAfterS ?? 2));
    } else {
      el.modelInfo.textContent = "";
    }
  }
}

loadModelInfo();
