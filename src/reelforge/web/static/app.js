// reelforge web page: plain JS, no framework, no build step.
// It speaks only to this server: the native API under /api/videos and each
// video's WebSocket of events (replayed from ?after=SEQ after a dropped connection).

const STAGES = [
  "queued",
  "submitting",
  "generating",
  "downloading",
  "processing",
  "validating",
  "completed",
];
const STAGE_LABEL = {
  queued: "Queued",
  submitting: "Submitting",
  generating: "Generating",
  downloading: "Downloading",
  processing: "Processing",
  validating: "Validating",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};
const STAGE_DOING = {
  queued: "Waiting for a worker",
  submitting: "Sending the job to the provider",
  generating: "Generating frames",
  downloading: "Fetching the result",
  processing: "Encoding the formats",
  validating: "Checking the quality",
};
// Why a queued video waits (the record's `waiting_for`).
const WAITING_FOR = {
  rate_limit: "the provider's rate limit",
  concurrency: "a free slot at the provider",
  circuit_open: "the provider to recover",
};
const STATUS_LABEL = {
  queued: "Queued",
  in_progress: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

// The API's input rules (DESIGN.md), checked here first for quick feedback.
const MAX_PROMPT = 32000;
const MAX_DURATION = 60;
const MIN_SIDE = 64;
const MAX_SIDE = 1920;
const MIN_FPS = 1;
const MAX_FPS = 60;
const MAX_SEED = 2 ** 32 - 1;
// Unicode category Cc except tab and newline: what the API refuses in a prompt.
const CONTROL_CHARS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/;
const CONTROL_CHARS_ALL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

const PAGE_SIZE = 20;
const MAX_BACKGROUND_FOLLOWERS = 8;
const KEY_STORAGE = "reelforge.apiKey";
const FORM_STORAGE = "reelforge.form";

const $ = (selector) => document.querySelector(selector);

// ---------------------------------------------------------------- storage

function load(name) {
  try {
    return window.localStorage.getItem(name);
  } catch {
    return null; // storage blocked: run without remembering
  }
}

function save(name, value) {
  try {
    if (value === null || value === "") window.localStorage.removeItem(name);
    else window.localStorage.setItem(name, value);
  } catch {
    /* storage blocked or full: nothing to remember then */
  }
}

const apiKey = () => load(KEY_STORAGE) || "";

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  const key = apiKey();
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(
      0,
      "network_error",
      "Cannot reach the reelforge server. Check that it is running, then try again.",
    );
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    if (response.status === 401 || response.status === 403) openKeyMenu();
    throw new ApiError(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `The server answered ${response.status} ${response.statusText}.`,
      error?.param ?? null,
    );
  }
  return data;
}

// Media elements, download links and WebSockets cannot send an Authorization
// header: the server signs the file and event URLs in its answers (short-lived
// links that open without a key), so the page uses those as they are and the key
// itself never goes into a URL.

function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// ---------------------------------------------------------------- live events

/** Follows one video's event WebSocket; reconnects with backoff and replays from
 * the last seq seen, until the terminal event. */
class Follower {
  constructor(id, { onEvent, onState, onGone, onStale }) {
    this.id = id;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onGone = onGone;
    this.onStale = onStale;
    this.lastSeq = 0;
    this.failures = 0;
    this.done = false;
    this.ws = null;
    this.timer = null;
    this.state = "connecting";
    this.connect();
  }

  url() {
    // The video's signed ``links.ws`` authorises the socket (refreshed with the
    // video when it expires); without one, a single-tenant server needs none.
    const link = state.videos.get(this.id)?.links?.ws;
    const [path, query] = (link || `/api/videos/${encodeURIComponent(this.id)}/ws`).split("?");
    const params = new URLSearchParams(query || "");
    params.set("after", String(this.lastSeq));
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${path}?${params}`;
  }

  setState(value, detail = "") {
    this.state = value;
    this.onState(value, detail);
  }

  connect() {
    if (this.done) return;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.setState(this.failures ? "reconnecting" : "connecting");
    ws.onopen = () => this.setState("live");
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (typeof event.seq === "number") {
        if (event.seq <= this.lastSeq) return; // replay overlap
        this.lastSeq = event.seq;
      }
      this.failures = 0;
      if (TERMINAL.has(event.type)) this.done = true;
      this.onEvent(event);
    };
    ws.onerror = () => {}; // a close event follows; it decides
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.done) {
        this.setState("closed");
        return;
      }
      if (event.code === 4404) {
        this.done = true;
        this.setState("closed");
        this.onGone();
        return;
      }
      // 4403: the signed link expired; the refreshed video brings a new one.
      if (event.code === 4403) this.onStale();
      this.retry();
    };
  }

  retry() {
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to 15 s.
    const delay = Math.min(15000, 500 * 2 ** this.failures) * (0.75 + Math.random() * 0.5);
    this.failures += 1;
    this.setState("reconnecting", `in ${Math.max(1, Math.round(delay / 1000))} s`);
    this.timer = setTimeout(() => this.connect(), delay);
    // While the socket stays down, keep the page honest over plain HTTP.
    if (this.failures >= 2) this.onStale();
  }

  /** Skip the rest of a backoff wait (the tab became visible, the network came back). */
  wake() {
    if (!this.done && !this.ws && this.timer) this.connect();
  }

  stop() {
    this.done = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    // Closing a socket that is still connecting makes browsers log an error.
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
    else ws.close(1000);
  }
}

// ---------------------------------------------------------------- state

const state = {
  videos: new Map(), // id -> the API's video object
  order: [], // ids in the history, newest first
  nextCursor: null,
  hasMore: false,
  selectedId: null,
  followers: new Map(), // id -> Follower
  seen: new Map(), // id -> Set of stages seen live
  connection: new Map(), // id -> {state, detail}
  busy: false,
  styles: new Map(), // name -> the style from GET /api/styles
  savedStyle: "", // the style the form had last time, until the styles are loaded
};

function rememberVideo(video) {
  const previous = state.videos.get(video.id);
  // Events can run ahead of a fetch answered a moment earlier: progress never goes back.
  if (previous && !TERMINAL.has(video.status) && TERMINAL.has(previous.status)) return previous;
  if (previous && !TERMINAL.has(video.status)) {
    video.progress = Math.max(video.progress ?? 0, previous.progress ?? 0);
  }
  state.videos.set(video.id, video);
  const seen = seenStages(video.id);
  for (const stage of Object.keys(video.stage_durations || {})) seen.add(stage);
  if (video.stage) seen.add(video.stage);
  return video;
}

function seenStages(id) {
  let seen = state.seen.get(id);
  if (!seen) {
    seen = new Set();
    state.seen.set(id, seen);
  }
  return seen;
}

function follow(id) {
  const video = state.videos.get(id);
  if (!video || TERMINAL.has(video.status) || state.followers.has(id)) return;
  const follower = new Follower(id, {
    onEvent: (event) => applyEvent(id, event),
    onState: (value, detail) => {
      state.connection.set(id, { state: value, detail });
      if (id === state.selectedId) renderConnection();
    },
    onGone: () => forgetVideo(id, "This video no longer exists."),
    onStale: () => refreshVideo(id),
  });
  state.followers.set(id, follower);
}

function unfollow(id) {
  const follower = state.followers.get(id);
  if (follower) follower.stop();
  state.followers.delete(id);
  state.connection.delete(id);
}

function followBackground() {
  let running = 0;
  for (const id of state.order) {
    const video = state.videos.get(id);
    if (!video || TERMINAL.has(video.status)) continue;
    if (running < MAX_BACKGROUND_FOLLOWERS || id === state.selectedId) follow(id);
    running += 1;
  }
}

function applyEvent(id, event) {
  const video = state.videos.get(id);
  if (!video) return;
  if (event.status) video.status = event.status;
  if (event.stage) {
    video.stage = event.stage;
    seenStages(id).add(event.stage);
  }
  if (typeof event.progress === "number") {
    video.progress = Math.max(video.progress ?? 0, event.progress);
  }
  if (event.error) video.error = event.error;
  if (event.provider) video.provider = event.provider;
  if ("waiting_for" in event) video.waiting_for = event.waiting_for || null;
  else if (event.stage && event.stage !== "queued") video.waiting_for = null;
  if (TERMINAL.has(event.type)) {
    if (event.type === "completed") video.progress = 100;
    if (cancelling.delete(id) && event.type === "cancelled") toast("Cancelled.");
    unfollow(id);
    // Files, validation, cost and attempts come with the full object.
    refreshVideo(id);
  }
  renderVideo(id);
}

async function refreshVideo(id) {
  try {
    const video = rememberVideo(await api(`/api/videos/${encodeURIComponent(id)}`));
    if (TERMINAL.has(video.status)) unfollow(id);
    renderVideo(id);
  } catch (error) {
    if (error.status === 404) forgetVideo(id, "This video no longer exists.");
    // Anything else: the live stream or the next refresh will catch up.
  }
}

function forgetVideo(id, message) {
  unfollow(id);
  state.videos.delete(id);
  state.seen.delete(id);
  state.order = state.order.filter((other) => other !== id);
  const node = historyNodes.get(id);
  if (node) node.remove();
  historyNodes.delete(id);
  if (state.selectedId === id) {
    select(null);
    if (message) toast(message);
  }
  renderHistoryChrome();
}

// ---------------------------------------------------------------- formatting

const numberFormat = new Intl.NumberFormat();
const costFormat = new Intl.NumberFormat(undefined, {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 4,
});
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absoluteFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 10) return `${seconds.toFixed(1).replace(/\.0$/, "")} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function relativeTime(iso) {
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return "";
  const seconds = Math.round((then - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 30) return relativeFormat.format(Math.round(seconds / 86400), "day");
  return absoluteFormat.format(new Date(then));
}

function sizeText(video) {
  const size = video.request?.size;
  return size ? size.replace("x", "×") : "";
}

function summary(video) {
  const r = video.request || {};
  return [formatSeconds(r.duration_seconds), sizeText(video), r.fps ? `${r.fps} fps` : ""]
    .filter(Boolean)
    .join(" · ");
}

function shortPrompt(text, limit = 60) {
  const chars = [...(text || "")];
  return chars.length > limit ? `${chars.slice(0, limit - 1).join("")}…` : chars.join("");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

// ---------------------------------------------------------------- toast

let toastTimer = null;
function toast(message) {
  const node = $("#toast");
  node.textContent = message;
  node.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.remove("show"), 3500);
}

// ---------------------------------------------------------------- the form

const form = $("#generate-form");
const fields = {
  prompt: $("#prompt"),
  duration: $("#duration"),
  fps: $("#fps"),
  size: $("#size"),
  width: $("#width"),
  height: $("#height"),
  seed: $("#seed"),
  provider: $("#provider"),
  negative: $("#negative-prompt"),
  style: $("#style"),
  enhance: $("#enhance"),
};
const formatBoxes = () => [...form.querySelectorAll('input[name="formats"]')];

// Where an API error's `param` is shown.
const PARAM_FIELDS = {
  prompt: "prompt",
  duration_seconds: "duration",
  fps: "fps",
  size: "size",
  seed: "seed",
  provider: "provider",
  formats: "formats",
  negative_prompt: "negative-prompt",
  style: "style",
};

const touched = new Set();

function codePoints(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

function promptProblem(raw) {
  const text = raw.trim();
  if (!text) return "Describe the video you want: the prompt is empty.";
  const length = codePoints(text);
  if (length > MAX_PROMPT) {
    return `The prompt is ${numberFormat.format(length)} characters long; the limit is ${numberFormat.format(MAX_PROMPT)}.`;
  }
  const match = text.match(CONTROL_CHARS);
  if (match) {
    const code = match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `The prompt contains a control character (U+${code}); remove it.`;
  }
  return null;
}

function integerIn(value, low, high) {
  if (!/^\d+$/.test(value.trim())) return null;
  const number = Number(value);
  return number >= low && number <= high ? number : null;
}

function selectedSize() {
  if (fields.size.value !== "custom") return fields.size.value;
  return `${fields.width.value.trim()}x${fields.height.value.trim()}`;
}

/** Read and check the form: {body, errors: {fieldId: message}}. */
function readForm() {
  const errors = {};
  const body = {};

  const prompt = fields.prompt.value;
  const promptError = promptProblem(prompt);
  if (promptError) errors.prompt = promptError;
  body.prompt = prompt;

  const duration = Number(fields.duration.value);
  if (fields.duration.value.trim() === "" || !Number.isFinite(duration) || duration <= 0 || duration > MAX_DURATION) {
    errors.duration = `Choose a duration above 0 and up to ${MAX_DURATION} seconds.`;
  } else {
    body.duration_seconds = duration;
  }

  const fps = integerIn(fields.fps.value, MIN_FPS, MAX_FPS);
  if (fps === null) errors.fps = `Choose a whole number of frames per second, ${MIN_FPS} to ${MAX_FPS}.`;
  else body.fps = fps;

  if (fields.size.value === "custom") {
    const sides = [fields.width.value, fields.height.value];
    const bad = sides.some((side) => integerIn(side, MIN_SIDE, MAX_SIDE) === null);
    const odd = !bad && sides.some((side) => Number(side) % 2 !== 0);
    if (bad) errors["custom-size"] = `Width and height must be whole numbers from ${MIN_SIDE} to ${MAX_SIDE}.`;
    else if (odd) errors["custom-size"] = "Width and height must be even numbers (video encoders need it).";
  }
  if (!errors["custom-size"]) body.size = selectedSize();

  const seed = fields.seed.value.trim();
  if (seed !== "") {
    const value = integerIn(seed, 0, MAX_SEED);
    if (value === null) errors.seed = `A seed is a whole number from 0 to ${numberFormat.format(MAX_SEED)}, or empty for a random one.`;
    else body.seed = value;
  }

  const provider = fields.provider.value.trim();
  if (provider.length > 64) errors.provider = "A provider name has at most 64 characters.";
  else if (provider) body.provider = provider;

  const formats = formatBoxes().filter((box) => box.checked).map((box) => box.value);
  if (formats.length === 0) errors.formats = "Pick at least one format.";
  else body.formats = formats;

  const negative = fields.negative.value.trim();
  if (negative) {
    if (codePoints(negative) > MAX_PROMPT) errors["negative-prompt"] = "This is longer than 32,000 characters.";
    else body.negative_prompt = negative;
  }
  if (fields.style.value) body.style = fields.style.value;
  if (fields.enhance.checked) body.enhance = true;
  return { body, errors };
}

const ERROR_TARGETS = ["prompt", "style", "duration", "fps", "size", "custom-size", "seed", "provider", "formats", "negative-prompt"];

function controlsFor(target) {
  if (target === "custom-size") return [fields.width, fields.height];
  if (target === "formats") return formatBoxes();
  return [document.getElementById(target)].filter(Boolean);
}

function setFieldError(target, message) {
  const node = document.getElementById(`${target}-error`);
  if (node) {
    node.textContent = message || "";
    node.hidden = !message;
  }
  for (const control of controlsFor(target)) {
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }
  if (target === "prompt") {
    $("#prompt-clean").hidden = !(message && CONTROL_CHARS.test(fields.prompt.value));
  }
}

function showErrors(errors, only = null) {
  for (const target of ERROR_TARGETS) {
    if (only && !only.has(target)) continue;
    setFieldError(target, errors[target]);
  }
}

function firstInvalid(errors) {
  const target = ERROR_TARGETS.find((name) => errors[name]);
  return target ? controlsFor(target)[0] : null;
}

function updateCounter() {
  const count = codePoints(fields.prompt.value);
  const node = $("#prompt-count");
  node.textContent = `${numberFormat.format(count)} / ${numberFormat.format(MAX_PROMPT)}`;
  node.classList.toggle("near", count > MAX_PROMPT * 0.9 && count <= MAX_PROMPT);
  node.classList.toggle("over", count > MAX_PROMPT);
}

// ---------------------------------------------------------------- providers

// name -> the /api/providers entry; filled once the listing arrives.
const providers = new Map();
let defaultRoute = [];
let wantedProvider = "";

function priceText(provider) {
  return provider.price_per_second > 0 ? `${costFormat.format(provider.price_per_second)}/s` : "free";
}

function providerLabel(provider) {
  const name = provider.model ? `${provider.name} · ${provider.model}` : provider.name;
  if (provider.error) return `${name} (misconfigured)`;
  const open = provider.circuit && provider.circuit.state === "open" ? ", unavailable now" : "";
  return `${name} — ${priceText(provider)}${open}`;
}

/** Offer each configured provider, with its price, in the provider field. */
async function loadProviders() {
  let listing;
  try {
    listing = await api("/api/providers");
  } catch {
    return; // the field still offers the server's route
  }
  defaultRoute = Array.isArray(listing.default_route) ? listing.default_route : [];
  const select = fields.provider;
  const route = defaultRoute.length ? ` (${defaultRoute.join(" → ")})` : "";
  select.options[0].textContent = `Server's route${route}`;
  for (const provider of listing.data || []) {
    providers.set(provider.name, provider);
    const option = document.createElement("option");
    option.value = provider.name;
    option.textContent = providerLabel(provider);
    option.disabled = Boolean(provider.error);
    select.append(option);
  }
  chooseProvider(wantedProvider);
  updateEstimate();
}

/** Select ``name`` if it is offered (or once it is), else the server's route. */
function chooseProvider(name) {
  wantedProvider = name || "";
  const offered = [...fields.provider.options].some((o) => o.value === wantedProvider);
  fields.provider.value = offered ? wantedProvider : "";
}

function updateCostEstimate(duration) {
  const node = $("#cost-estimate");
  const chosen = providers.get(fields.provider.value || defaultRoute[0] || "");
  if (!chosen || chosen.error || !(Number.isFinite(duration) && duration > 0)) {
    node.textContent = "";
    return;
  }
  const cost = chosen.price_per_second * duration;
  node.textContent = cost > 0 ? `Estimated cost ${costFormat.format(cost)}` : "No cost (runs here)";
}

function updateEstimate() {
  const duration = Number(fields.duration.value);
  updateCostEstimate(duration);
  const fps = Number(fields.fps.value);
  const size = selectedSize();
  const node = $("#estimate");
  if (Number.isFinite(duration) && duration > 0 && Number.isInteger(fps) && fps > 0 && /^\d+x\d+$/.test(size)) {
    node.textContent = `${numberFormat.format(Math.ceil(duration * fps))} frames at ${size.replace("x", "×")}`;
  } else {
    node.textContent = "";
  }
}

function revalidateTouched() {
  const { errors } = readForm();
  showErrors(errors, touched);
}

function saveFormOptions() {
  const options = {
    prompt: fields.prompt.value,
    duration: fields.duration.value,
    fps: fields.fps.value,
    size: fields.size.value,
    width: fields.width.value,
    height: fields.height.value,
    seed: fields.seed.value,
    provider: fields.provider.value,
    negative: fields.negative.value,
    style: fields.style.value,
    enhance: fields.enhance.checked,
    formats: formatBoxes().filter((box) => box.checked).map((box) => box.value),
  };
  save(FORM_STORAGE, JSON.stringify(options));
}

function restoreFormOptions() {
  let options;
  try {
    options = JSON.parse(load(FORM_STORAGE) || "null");
  } catch {
    options = null;
  }
  if (!options || typeof options !== "object") return;
  for (const name of ["prompt", "duration", "fps", "width", "height", "seed", "negative"]) {
    if (typeof options[name] === "string") fields[name].value = options[name];
  }
  if (typeof options.provider === "string") chooseProvider(options.provider);
  if (typeof options.size === "string" && [...fields.size.options].some((o) => o.value === options.size)) {
    fields.size.value = options.size;
  }
  if (Array.isArray(options.formats) && options.formats.length) {
    for (const box of formatBoxes()) box.checked = options.formats.includes(box.value);
  }
  fields.enhance.checked = options.enhance === true;
  // The style is put back once the server's styles are loaded (loadStyles).
  state.savedStyle = typeof options.style === "string" ? options.style : "";
}

/** Fill the style picker from GET /api/styles; a failure leaves "None" alone. */
async function loadStyles() {
  let listing;
  try {
    listing = await api("/api/styles");
  } catch {
    return;
  }
  state.styles = new Map((listing.data || []).map((style) => [style.name, style]));
  for (const style of state.styles.values()) {
    const label = `${style.name[0].toUpperCase()}${style.name.slice(1)} · ${style.description}`;
    fields.style.append(el("option", { value: style.name, text: label }));
  }
  if (state.savedStyle && state.styles.has(state.savedStyle)) fields.style.value = state.savedStyle;
}

/** A style suggests a frame rate and size: put them in the form (still editable). */
function applyStyleDefaults() {
  const style = state.styles.get(fields.style.value);
  if (!style) return;
  if (style.fps) fields.fps.value = String(style.fps);
  if (style.size) {
    if ([...fields.size.options].some((o) => o.value === style.size)) {
      fields.size.value = style.size;
    } else {
      fields.size.value = "custom";
      [fields.width.value, fields.height.value] = style.size.split("x");
    }
  }
  syncCustomSize();
  updateEstimate();
}

function syncCustomSize() {
  $("#custom-size").hidden = fields.size.value !== "custom";
}

/** Put a video's request back into the form (Reuse settings). */
function fillForm(video) {
  const r = video.request || {};
  fields.prompt.value = r.prompt ?? video.prompt ?? "";
  if (r.duration_seconds) fields.duration.value = String(r.duration_seconds);
  if (r.fps) fields.fps.value = String(r.fps);
  if (r.size) {
    if ([...fields.size.options].some((o) => o.value === r.size)) {
      fields.size.value = r.size;
    } else {
      fields.size.value = "custom";
      const [w, h] = r.size.split("x");
      fields.width.value = w;
      fields.height.value = h;
    }
  }
  fields.seed.value = r.seed ?? "";
  chooseProvider(r.provider ?? video.provider ?? "");
  fields.negative.value = r.negative_prompt ?? "";
  fields.style.value = r.style && state.styles.has(r.style) ? r.style : "";
  fields.enhance.checked = r.enhance === true;
  const formats = r.formats || ["mp4"];
  for (const box of formatBoxes()) box.checked = formats.includes(box.value);
  syncCustomSize();
  updateCounter();
  updateEstimate();
  showErrors({});
  saveFormOptions();
  fields.prompt.focus();
  toast("Settings copied into the form.");
}

function setBusy(busy) {
  state.busy = busy;
  const button = $("#generate");
  button.disabled = busy;
  button.setAttribute("aria-busy", busy ? "true" : "false");
  button.querySelector(".button-label").textContent = busy ? "Starting…" : "Generate";
}

function showFormError(title, message) {
  const node = $("#form-error");
  node.replaceChildren();
  if (!message) {
    node.hidden = true;
    return;
  }
  node.append(el("strong", { text: title }), " ", el("span", { class: "api-message", text: message }));
  node.hidden = false;
}

async function submitForm(event) {
  event.preventDefault();
  if (state.busy) return;
  const { body, errors } = readForm();
  for (const name of Object.keys(errors)) touched.add(name);
  showErrors(errors);
  if (Object.keys(errors).length) {
    showFormError("", null);
    firstInvalid(errors)?.focus();
    return;
  }
  showFormError("", null);
  setBusy(true);
  try {
    const video = await api("/api/videos/generate", {
      method: "POST",
      body,
      headers: { "Idempotency-Key": newIdempotencyKey() },
    });
    addVideo(video);
    select(video.id, { reveal: true });
  } catch (error) {
    const target = PARAM_FIELDS[error.param];
    const fieldTarget = target === "size" && fields.size.value === "custom" ? "custom-size" : target;
    if (fieldTarget) {
      touched.add(fieldTarget);
      setFieldError(fieldTarget, error.message);
    }
    showFormError("The server did not accept this:", error.message);
    (fieldTarget ? controlsFor(fieldTarget)[0] : null)?.focus();
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------- the viewer

const player = $("#player");

function select(id, { reveal = false } = {}) {
  state.selectedId = id;
  if (id) {
    follow(id);
    if (window.location.hash !== `#${id}`) window.history.replaceState(null, "", `#${id}`);
  } else if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  for (const [other, node] of historyNodes) node.classList.toggle("selected", other === id);
  renderCurrent();
  if (reveal) revealViewer();
}

function revealViewer() {
  const viewer = $("#viewer");
  const box = viewer.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight * 0.6) {
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    viewer.scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
  }
}

function stopPlayer() {
  if (!player.dataset.videoId) return;
  player.pause();
  player.removeAttribute("poster");
  player.replaceChildren();
  player.removeAttribute("src");
  player.load();
  delete player.dataset.videoId;
}

function fileOf(video, format) {
  return (video.files || []).find((file) => file.format === format) || null;
}

function renderConnection() {
  const node = $("#conn");
  const video = state.videos.get(state.selectedId);
  const info = state.connection.get(state.selectedId);
  if (!video || TERMINAL.has(video.status) || !info) {
    node.textContent = "";
    delete node.dataset.state;
    return;
  }
  node.dataset.state = info.state;
  node.textContent =
    info.state === "live"
      ? "Live"
      : info.state === "reconnecting"
        ? `Connection lost, reconnecting${info.detail ? ` ${info.detail}` : ""}…`
        : "Connecting…";
}

function furthestStage(video) {
  const seen = seenStages(video.id);
  let index = 0;
  STAGES.forEach((stage, i) => {
    if (seen.has(stage) && stage !== "completed") index = Math.max(index, i);
  });
  return index;
}

function renderStepper(video) {
  const stepper = $("#stepper");
  const current = video.stage;
  const stopped = current === "failed" || current === "cancelled";
  const activeIndex = stopped ? furthestStage(video) : STAGES.indexOf(current);
  stepper.dataset.stage = current;
  for (const li of stepper.children) {
    const index = STAGES.indexOf(li.dataset.step);
    let stepState = "todo";
    if (current === "completed" || index < activeIndex) stepState = "done";
    else if (index === activeIndex) stepState = stopped ? "stopped" : "current";
    li.dataset.state = stepState;
    if (stepState === "current") li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
    let note = li.querySelector(".sr-only");
    if (!note) {
      note = el("span", { class: "sr-only" });
      li.append(note);
    }
    note.textContent = { done: " (done)", current: " (now)", stopped: ` (${current})`, todo: "" }[stepState];
  }
}

function statusText(video) {
  if (video.status === "completed") {
    const took = (Date.parse(video.completed_at) - Date.parse(video.created_at)) / 1000;
    return Number.isFinite(took) ? `Ready, made in ${formatSeconds(took)}.` : "Ready.";
  }
  if (video.status === "failed") return "It failed.";
  if (video.status === "cancelled") return "Cancelled.";
  if (video.stage === "queued" && video.waiting_for) {
    return `Waiting for ${WAITING_FOR[video.waiting_for] || video.waiting_for.replaceAll("_", " ")}…`;
  }
  return `${STAGE_DOING[video.stage] || STAGE_LABEL[video.stage] || video.stage}…`;
}

function renderCurrent() {
  const video = state.videos.get(state.selectedId);
  $("#empty-state").hidden = Boolean(video);
  $("#current").hidden = !video;
  if (!video) {
    stopPlayer();
    delete $("#current").dataset.videoId;
    $("#viewer-title").textContent = "Preview";
    return;
  }
  $("#current").dataset.videoId = video.id;
  const terminal = TERMINAL.has(video.status);
  $("#viewer-title").textContent = terminal ? "Your video" : "Making your video";
  const badge = $("#current-badge");
  badge.dataset.status = video.status;
  badge.textContent = STATUS_LABEL[video.status] || video.status;
  $("#current-prompt").textContent = video.prompt;
  const processed = video.processed_prompt;
  $("#current-processed").hidden = !processed || processed === video.prompt;
  $("#current-processed-text").textContent = processed || "";
  renderStepper(video);
  renderConnection();

  const progress = Math.max(0, Math.min(100, Math.round(video.progress ?? 0)));
  $("#progress").value = progress;
  $("#progress-value").textContent = `${progress}%`;
  $("#status-text").textContent = statusText(video);

  const errorNode = $("#current-error");
  if (video.status === "failed") {
    const error = video.error || {};
    errorNode.replaceChildren(
      el("strong", { text: "Generation failed:" }),
      " ",
      el("span", { text: error.message || "no reason was given." }),
      error.code ? el("span", { class: "hint", text: ` (${error.code})` }) : null,
    );
    errorNode.hidden = false;
  } else {
    errorNode.hidden = true;
  }

  $("#current-cancel").hidden = terminal;
  renderResult(video);
}

function renderResult(video) {
  const result = $("#result");
  const ready = video.status === "completed" && (video.files || []).length > 0;
  result.hidden = !ready;
  if (!ready) {
    stopPlayer();
    return;
  }
  if (player.dataset.videoId !== video.id) {
    stopPlayer();
    player.dataset.videoId = video.id;
    const thumbnail = fileOf(video, "thumbnail");
    if (thumbnail) player.poster = thumbnail.url;
    const sources = [
      ["mp4", "video/mp4"],
      ["webm", "video/webm"],
    ];
    for (const [format, type] of sources) {
      const file = fileOf(video, format);
      if (file) player.append(el("source", { src: file.url, type }));
    }
    player.setAttribute("aria-label", `Video: ${shortPrompt(video.prompt, 120)}`);
    player.load();
  }
  renderDownloads(video);
  renderReport(video);
}

const DOWNLOADS = [
  ["mp4", "MP4", ".mp4"],
  ["webm", "WebM", ".webm"],
  ["thumbnail", "Thumbnail", "-thumbnail"],
  ["spritesheet", "Sprite sheet", "-spritesheet"],
];

function renderDownloads(video) {
  const node = $("#downloads");
  node.replaceChildren();
  for (const [format, label, suffix] of DOWNLOADS) {
    const file = fileOf(video, format);
    if (!file) continue;
    const size = formatBytes(file.bytes);
    node.append(
      el(
        "a",
        {
          class: "button",
          href: file.url,
          download: `${video.id}${suffix}`,
          "data-format": format,
          "aria-label": `Download ${label}${size ? ` (${size})` : ""}`,
        },
        el("span", { "aria-hidden": "true", text: "↓" }),
        label,
        size ? el("span", { class: "meta", text: size }) : null,
      ),
    );
  }
}

function renderReport(video) {
  const validation = $("#validation");
  validation.replaceChildren();
  const report = video.validation;
  if (!report) {
    validation.className = "report-item";
    validation.append(el("strong", { text: "Quality check:" }), " not run.");
  } else if (report.ok && !(report.problems || []).length) {
    validation.className = "report-item ok";
    validation.append(el("strong", { text: "✓ Quality check passed:" }), " no problems found.");
  } else {
    const problems = report.problems || [];
    validation.className = `report-item ${report.ok ? "ok" : "bad"}`;
    const noun = problems.length === 1 ? "problem" : "problems";
    validation.append(
      el("strong", { text: report.ok ? "✓ Quality check passed" : "✕ Quality check failed" }),
      ` with ${problems.length} ${noun}:`,
    );
    const list = el("ul");
    for (const problem of problems) {
      const span =
        Number.isFinite(problem.start) && Number.isFinite(problem.end)
          ? ` (${problem.start.toFixed(1)}–${problem.end.toFixed(1)} s)`
          : "";
      list.append(el("li", {}, el("code", { text: problem.code || "problem" }), ` ${problem.message || ""}${span}`));
    }
    validation.append(list);
  }

  const mp4 = fileOf(video, "mp4") || fileOf(video, "webm");
  const took = (Date.parse(video.completed_at) - Date.parse(video.created_at)) / 1000;
  const facts = [
    ["Cost", costFormat.format(video.cost ?? 0)],
    ["Made in", formatSeconds(took)],
    ["Length", mp4?.duration ? formatSeconds(mp4.duration) : formatSeconds(video.request?.duration_seconds)],
    ["Size", mp4?.width ? `${mp4.width}×${mp4.height}` : sizeText(video)],
    ["Frame rate", video.request?.fps ? `${video.request.fps} fps` : ""],
    ["Codecs", mp4 ? [mp4.video_codec, mp4.audio_codec].filter(Boolean).join(" + ") : ""],
    ["Provider", video.provider],
    ["Seed", video.seed ?? ""],
  ];
  const list = $("#facts");
  list.replaceChildren();
  for (const [name, value] of facts) {
    if (value === "" || value === null || value === undefined) continue;
    list.append(el("div", {}, el("dt", { text: name }), el("dd", { text: String(value) })));
  }
}

// ---------------------------------------------------------------- actions

const cancelling = new Set(); // ids whose cancel the user is waiting to see

async function cancelVideo(id) {
  try {
    const video = rememberVideo(await api(`/api/videos/${encodeURIComponent(id)}/cancel`, { method: "POST" }));
    renderVideo(id);
    if (TERMINAL.has(video.status)) toast("Cancelled.");
    else {
      cancelling.add(id);
      toast("Cancelling…");
    }
  } catch (error) {
    reportActionError("Could not cancel:", error);
  }
}

async function regenerateVideo(id) {
  try {
    const video = await api(`/api/videos/${encodeURIComponent(id)}/regenerate`, { method: "POST", body: {} });
    addVideo(video);
    select(video.id, { reveal: true });
    toast("Regenerating with a new seed.");
  } catch (error) {
    reportActionError("Could not regenerate:", error);
  }
}

async function deleteVideo(id) {
  if (state.selectedId === id) stopPlayer(); // no media request may outlive the file
  const node = historyNodes.get(id);
  const next = node?.nextElementSibling || node?.previousElementSibling;
  try {
    await api(`/api/videos/${encodeURIComponent(id)}`, { method: "DELETE" });
    const hadFocus = node?.contains(document.activeElement);
    forgetVideo(id, null);
    if (state.selectedId === null && state.order.length) select(state.order[0]);
    toast("Deleted.");
    if (hadFocus) (next?.querySelector(".item-open") || $("#history")).focus();
  } catch (error) {
    reportActionError("Could not delete:", error);
    renderVideo(id);
  }
}

function reportActionError(title, error) {
  const node = $("#history-error");
  node.replaceChildren(el("strong", { text: title }), " ", el("span", { class: "api-message", text: error.message }));
  node.hidden = false;
  toast(`${title} ${error.message}`);
}

// ---------------------------------------------------------------- history

const historyNodes = new Map(); // id -> <li>

function addVideo(video) {
  rememberVideo(video);
  if (!state.order.includes(video.id)) state.order.unshift(video.id);
  renderHistory();
  follow(video.id);
}

function historyItem(id) {
  const openButton = el("button", { type: "button", class: "item-open", onclick: () => select(id, { reveal: true }) },
    el("span", { class: "thumb" }, el("span", { class: "glyph", "aria-hidden": "true" }), el("span", { class: "mini-progress" })),
    el("span", { class: "item-body" },
      el("span", { class: "item-meta" }, el("span", { class: "badge" }), el("time")),
      el("span", { class: "item-prompt" }),
      el("span", { class: "item-facts hint" }),
    ),
  );
  const actions = el("div", { class: "item-actions" },
    el("button", { type: "button", class: "button ghost small", "data-action": "cancel", onclick: () => cancelVideo(id) }, "Cancel"),
    el("button", { type: "button", class: "button ghost small", "data-action": "regenerate", onclick: () => regenerateVideo(id) }, "Regenerate"),
    el("button", { type: "button", class: "button ghost small", "data-action": "delete", onclick: (event) => confirmDelete(event.currentTarget, id) }, "Delete"),
  );
  return el("li", { class: "item", "data-id": id }, openButton, actions);
}

function confirmDelete(button, id) {
  if (button.dataset.armed === "true") {
    button.disabled = true;
    deleteVideo(id);
    return;
  }
  button.dataset.armed = "true";
  button.classList.add("danger");
  button.textContent = "Confirm delete";
  const video = state.videos.get(id);
  button.setAttribute("aria-label", `Confirm delete “${shortPrompt(video?.prompt)}”`);
  setTimeout(() => {
    if (!button.isConnected || button.disabled) return;
    button.dataset.armed = "false";
    button.classList.remove("danger");
    button.textContent = "Delete";
    button.setAttribute("aria-label", `Delete “${shortPrompt(video?.prompt)}”`);
  }, 4000);
}

function renderHistoryItem(id) {
  const video = state.videos.get(id);
  const node = historyNodes.get(id);
  if (!video || !node) return;
  node.dataset.status = video.status;
  node.classList.toggle("selected", id === state.selectedId);
  const short = shortPrompt(video.prompt);

  const thumb = node.querySelector(".thumb");
  const thumbnail = video.status === "completed" ? fileOf(video, "thumbnail") : null;
  let img = thumb.querySelector("img");
  if (thumbnail) {
    const src = thumbnail.url;
    if (!img) {
      img = el("img", { alt: "", loading: "lazy", decoding: "async" });
      thumb.prepend(img);
    }
    if (img.getAttribute("src") !== src) img.setAttribute("src", src);
  } else if (img) {
    img.remove();
  }
  const glyph = thumb.querySelector(".glyph");
  glyph.textContent = thumbnail ? "" : { failed: "✕", cancelled: "■", completed: "▶" }[video.status] || "◌";
  const running = !TERMINAL.has(video.status);
  thumb.querySelector(".mini-progress").style.width = running ? `${video.progress ?? 0}%` : "0";

  const badge = node.querySelector(".badge");
  badge.dataset.status = video.status;
  badge.textContent = running
    ? `${STAGE_LABEL[video.stage] || video.stage} ${video.progress ?? 0}%`
    : STATUS_LABEL[video.status] || video.status;
  const time = node.querySelector("time");
  time.dateTime = video.created_at;
  time.textContent = relativeTime(video.created_at);
  time.title = absoluteFormat.format(new Date(video.created_at));
  node.querySelector(".item-prompt").textContent = video.prompt;
  node.querySelector(".item-facts").textContent = summary(video);

  const open = node.querySelector(".item-open");
  open.setAttribute("aria-label", `Open “${short}”, ${badge.textContent}, ${time.textContent}`);
  if (id === state.selectedId) open.setAttribute("aria-current", "true");
  else open.removeAttribute("aria-current");

  const cancel = node.querySelector('[data-action="cancel"]');
  cancel.hidden = !running;
  cancel.setAttribute("aria-label", `Cancel “${short}”`);
  node.querySelector('[data-action="regenerate"]').setAttribute("aria-label", `Regenerate “${short}”`);
  const del = node.querySelector('[data-action="delete"]');
  if (del.dataset.armed !== "true") del.setAttribute("aria-label", `Delete “${short}”`);
}

function renderHistory() {
  const list = $("#history-list");
  // Keyed update: existing nodes move, so focus and images survive a refresh.
  const wanted = state.order.filter((id) => state.videos.has(id));
  wanted.forEach((id, index) => {
    let node = historyNodes.get(id);
    if (!node) {
      node = historyItem(id);
      historyNodes.set(id, node);
    }
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    renderHistoryItem(id);
  });
  for (const [id, node] of historyNodes) {
    if (!wanted.includes(id)) {
      node.remove();
      historyNodes.delete(id);
    }
  }
  renderHistoryChrome();
}

function renderHistoryChrome() {
  $("#history-empty").hidden = state.order.length > 0;
  $("#load-more").hidden = !state.hasMore;
}

function renderVideo(id) {
  renderHistoryItem(id);
  if (id === state.selectedId) renderCurrent();
}

async function loadHistory({ more = false } = {}) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (more && state.nextCursor) params.set("after", state.nextCursor);
  const button = $("#load-more");
  button.disabled = true;
  try {
    const page = await api(`/api/videos?${params}`);
    $("#history-error").hidden = true;
    if (!more) state.order = [];
    for (const video of page.data) {
      rememberVideo(video);
      if (!state.order.includes(video.id)) state.order.push(video.id);
    }
    state.hasMore = Boolean(page.has_more);
    state.nextCursor = page.next_cursor;
    renderHistory();
    followBackground();
    if (state.selectedId) renderCurrent();
    return true;
  } catch (error) {
    const node = $("#history-error");
    node.replaceChildren(el("strong", { text: "Could not load the history:" }), " ", el("span", { class: "api-message", text: error.message }));
    node.hidden = false;
    return false;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- API key

function openKeyMenu() {
  $("#key-menu").open = true;
}

function renderKey() {
  const set = Boolean(apiKey());
  $("#key-dot").classList.toggle("set", set);
  $("#key-summary").textContent = set ? "API key set" : "API key";
  $("#api-key").value = apiKey();
}

function restartFollowers() {
  for (const id of [...state.followers.keys()]) unfollow(id);
  followBackground();
  if (state.selectedId) follow(state.selectedId);
}

// ---------------------------------------------------------------- wiring

function wire() {
  form.addEventListener("submit", submitForm);
  fields.style.addEventListener("change", applyStyleDefaults);
  fields.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  fields.prompt.addEventListener("input", () => {
    updateCounter();
    // Say "too long" at once; other complaints wait until the field was left once.
    if (codePoints(fields.prompt.value) > MAX_PROMPT) touched.add("prompt");
  });
  form.addEventListener("input", () => {
    revalidateTouched();
    updateEstimate();
    saveFormOptions();
  });
  form.addEventListener("change", (event) => {
    if (event.target === fields.provider) wantedProvider = fields.provider.value;
    syncCustomSize();
    revalidateTouched();
    updateEstimate();
    saveFormOptions();
  });
  // A message that appears when a field is left moves what is below it. If the field
  // was left by pressing on a button (Generate), showing it at once would move the
  // button away before the press ends and swallow the click: wait for the release.
  let pointerDown = false;
  let validateOnRelease = false;
  document.addEventListener("pointerdown", () => { pointerDown = true; }, true);
  const released = () => {
    pointerDown = false;
    if (validateOnRelease) {
      validateOnRelease = false;
      setTimeout(revalidateTouched, 0); // after the click this release makes
    }
  };
  document.addEventListener("pointerup", released, true);
  document.addEventListener("pointercancel", released, true);
  form.addEventListener("focusout", (event) => {
    const id = event.target.id;
    const target = id === "width" || id === "height" ? "custom-size" : event.target.name === "formats" ? "formats" : id;
    if (ERROR_TARGETS.includes(target) && event.target.value !== "") {
      touched.add(target);
      if (pointerDown) validateOnRelease = true;
      else revalidateTouched();
    }
  });
  $("#prompt-clean").addEventListener("click", () => {
    fields.prompt.value = fields.prompt.value.replace(CONTROL_CHARS_ALL, "");
    updateCounter();
    revalidateTouched();
    saveFormOptions();
    fields.prompt.focus();
  });
  for (const chip of document.querySelectorAll("[data-idea]")) {
    chip.addEventListener("click", () => {
      fields.prompt.value = chip.dataset.idea;
      updateCounter();
      revalidateTouched();
      saveFormOptions();
      fields.prompt.focus();
    });
  }
  $("#seed-random").addEventListener("click", () => {
    const value = new Uint32Array(1);
    crypto.getRandomValues(value);
    fields.seed.value = String(value[0]);
    revalidateTouched();
    saveFormOptions();
  });

  $("#current-cancel").addEventListener("click", () => state.selectedId && cancelVideo(state.selectedId));
  $("#current-regenerate").addEventListener("click", () => state.selectedId && regenerateVideo(state.selectedId));
  $("#current-reuse").addEventListener("click", () => {
    const video = state.videos.get(state.selectedId);
    if (video) fillForm(video);
  });

  $("#load-more").addEventListener("click", () => loadHistory({ more: true }));
  $("#history-refresh").addEventListener("click", async () => {
    if (await loadHistory()) toast("History refreshed.");
  });

  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save(KEY_STORAGE, $("#api-key").value.trim());
    renderKey();
    $("#key-menu").open = false;
    toast(apiKey() ? "API key saved in this browser." : "API key cleared.");
    restartFollowers();
    loadHistory();
  });
  $("#api-key-forget").addEventListener("click", () => {
    save(KEY_STORAGE, null);
    renderKey();
    $("#key-menu").open = false;
    toast("API key forgotten.");
    restartFollowers();
    loadHistory();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("#key-menu").open) {
      $("#key-menu").open = false;
      $("#key-menu summary").focus();
    }
  });

  window.addEventListener("hashchange", () => {
    const id = window.location.hash.slice(1);
    if (id !== state.selectedId && state.videos.has(id)) select(id, { reveal: true });
  });

  const wakeAll = () => {
    for (const follower of state.followers.values()) follower.wake();
  };
  window.addEventListener("online", wakeAll);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") wakeAll();
  });
  // Keep "3 minutes ago" true.
  setInterval(() => {
    for (const id of historyNodes.keys()) {
      const node = historyNodes.get(id).querySelector("time");
      const video = state.videos.get(id);
      if (video) node.textContent = relativeTime(video.created_at);
    }
  }, 30000);
}

async function start() {
  restoreFormOptions();
  syncCustomSize();
  updateCounter();
  updateEstimate();
  renderKey();
  wire();
  await loadStyles();
  const [loaded] = await Promise.all([loadHistory(), loadProviders()]);
  const wanted = window.location.hash.slice(1);
  if (/^video_[0-9a-f]{24}$/.test(wanted)) {
    if (!state.videos.has(wanted)) {
      try {
        rememberVideo(await api(`/api/videos/${wanted}`));
      } catch (error) {
        toast(error.message);
      }
    }
  }
  if (state.videos.has(wanted)) select(wanted);
  else if (loaded && state.order.length) select(state.order[0]);
  else select(null);
}

// data-ready tells scripts and tests that the first history load has been shown.
start().finally(() => {
  document.body.dataset.ready = "true";
});
