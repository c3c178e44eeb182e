// The page of `pareidolia serve`. No build step, nothing loaded from elsewhere; text from runs
// and prompts is set with textContent only (never as HTML).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const state = {
  ws: null,
  selected: null,        // id of the run on view
  selectedInfo: null,    // its /api/runs/:id payload
  live: new Map(),       // run number → {id, frames: Map(step → object URL), evaluations, step}
  idToNumber: new Map(),
  mine: new Set(),       // ids this page queued (to follow them live)
  word: null,            // index of the chosen word
  maps: null,            // the payload of /maps for the current step window
  mapsKey: null,
  parent: null,          // id the form forks
  running: null,         // id running now
};

function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!response.ok) throw new Error((body && body.error) || response.statusText);
  return body;
}

// ---- the event socket -------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(withToken(scheme + "//" + location.host + "/ws"));
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => { $("connection").textContent = "live"; $("connection").classList.add("live"); };
  ws.onclose = () => {
    $("connection").textContent = "reconnecting…";
    $("connection").classList.remove("live");
    setTimeout(connect, 1000);
  };
  ws.onmessage = (message) => {
    if (typeof message.data === "string") onEvent(JSON.parse(message.data));
    else onFrame(message.data);
  };
}

// Streamed frames are kept for the newest few runs only (a page left open for a day must not grow
// without bound); older runs' steps come from the server (/api/runs/ID/steps/N) like any run on disk.
const KEPT_LIVE_RUNS = 3;

function liveRun(number, id) {
  if (!state.live.has(number)) {
    state.live.set(number, { id, frames: new Map(), evaluations: 0, step: 0 });
    for (const [old, run] of state.live) {
      if (state.live.size <= KEPT_LIVE_RUNS) break;
      for (const url of run.frames.values()) URL.revokeObjectURL(url);
      state.live.delete(old);
    }
  }
  const run = state.live.get(number);
  if (id) { run.id = id; state.idToNumber.set(id, number); }
  return run;
}

function onEvent(e) {
  if (e.type === "queue") {
    state.running = e.running ? e.running.id : null;
    if (e.running) liveRun(e.running.number, e.running.id);
    const waiting = e.pending.length;
    const mineWaiting = e.pending.findIndex((p) => state.mine.has(p.id));
    if (!e.running && waiting === 0 && !state.selected) setStatus("Idle. Type a prompt and start a run.");
    else if (mineWaiting >= 0) setStatus("Your run is in the queue: " + (mineWaiting + 1) + " of " + waiting + ".");
    updateCancel();
  } else if (e.type === "start") {
    liveRun(e.number, e.id);
    if (state.mine.has(e.id)) selectRun(e.id, true);
  } else if (e.type === "step") {
    const run = liveRun(e.number, e.id);
    run.evaluations = e.evaluations;
    run.step = e.step;
    if (state.selected === e.id) {
      setStatus("Step " + e.step + " of " + e.evaluations + " · " + e.seconds_per_step.toFixed(2) + " s/it · ETA " +
                formatSeconds(e.eta) + " · t = " + e.timestep.toFixed(1));
      const scrub = $("scrubber");
      const atEnd = Number(scrub.value) >= Number(scrub.max);
      scrub.max = String(e.evaluations);
      scrub.disabled = false;
      if (atEnd) { scrub.value = String(e.step); showStep(e.step); }
    }
  } else if (e.type === "done") {
    if (state.selected === e.id) {
      setStatus(e.status === "done" ? "Done." : e.status === "cancelled" ? "Cancelled (the partial trace is kept)." : "Failed: " + (e.message || ""));
      // Followed to its end, a run shows its decoded image: the live frames are previews.
      const scrub = $("scrubber");
      if (e.status === "done" && Number(scrub.value) >= Number(scrub.max)) $("show-final").checked = true;
      selectRun(e.id, false);
    }
    state.mine.delete(e.id);
    refreshRuns();
    updateCancel();
  }
}

function onFrame(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 16 || view.getUint32(0) !== 1) return;
  const number = view.getUint32(4), step = view.getUint32(8);
  const run = liveRun(number);
  const url = URL.createObjectURL(new Blob([buffer.slice(16)], { type: "image/png" }));
  const old = run.frames.get(step);
  if (old) URL.revokeObjectURL(old);
  run.frames.set(step, url);
  // Following the live edge: the newest frame is shown unless the person scrubbed back.
  const scrub = $("scrubber");
  if (state.selected === run.id && !$("show-final").checked && Number(scrub.value) >= step - 1) {
    if (Number(scrub.max) < step) scrub.max = String(step);
    scrub.value = String(step);
    scrub.disabled = false;
    $("step-label").textContent = step + " / " + scrub.max;
    $("frame").src = url;
  }
}

// ---- runs ----------------------------------------------------------------------------------------

async function refreshRuns() {
  let body;
  try { body = await api("/api/runs"); } catch (e) { return; }
  const list = $("runs");
  list.replaceChildren();
  for (const run of body.runs) {
    const li = document.createElement("li");
    li.dataset.id = run.id;
    if (run.id === state.selected) li.classList.add("selected");
    const img = document.createElement("img");
    img.alt = "";
    if (run.has_image) img.src = withToken("/api/runs/" + run.id + "/image.png");
    const text = document.createElement("div");
    text.className = "text";
    const prompt = document.createElement("div");
    prompt.textContent = run.prompt;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = "seed " + run.seed + " · " + run.sampler + " · " + run.status + (run.separate ? " · remedy" : run.parent ? " · fork" : "");
    text.append(prompt, meta);
    li.append(img, text);
    li.addEventListener("click", () => selectRun(run.id, false));
    list.append(li);
  }
}

async function selectRun(id, live) {
  const changed = state.selected !== id;
  state.selected = id;
  if (changed) {
    state.maps = null; state.mapsKey = null; state.word = null;
    $("words").replaceChildren(); $("ranking").textContent = ""; $("merge-verdict").textContent = ""; $("remedy").hidden = true;
  }
  for (const li of $("runs").children) li.classList.toggle("selected", li.dataset.id === id);
  let info;
  try { info = await api("/api/runs/" + id); } catch (e) { setStatus("Run " + id + ": " + e.message); return; }
  state.selectedInfo = info;
  const trace = info.trace || {};
  const done = trace.steps_completed || 0;
  const number = state.idToNumber.get(id);
  const liveInfo = number !== undefined ? state.live.get(number) : null;
  const total = trace.evaluations || (liveInfo ? liveInfo.evaluations : 0) || done;
  const scrub = $("scrubber");
  scrub.max = String(Math.max(total, 1));
  scrub.disabled = total === 0;
  if (changed || !live) scrub.value = String(Math.max(done, 1));
  // A finished run opens on its decoded image; scrubbing goes back to the steps' x̂₀.
  if (changed) $("show-final").checked = !live && info.request && info.request.status === "done";
  $("fork").disabled = false;
  const link = $("trace-link");
  link.hidden = !info.trace;
  link.href = withToken("/api/runs/" + id);
  if (!live && info.request && info.request.status !== "running") {
    setStatus(describe(info.request));
  }
  showStep(Number(scrub.value));
  showParent(info.request);
  updateCancel();
}

function describe(r) {
  return "“" + r.prompt + "” · seed " + r.seed + " · " + r.steps + " steps · " + r.sampler + " · guidance " + r.guidance +
    (r.separate ? " · remedy: " + r.separate.join(" | ") + " apart" : "") + " · " + r.status;
}

function showStep(step) {
  const id = state.selected;
  if (!id) return;
  $("step-label").textContent = step + " / " + $("scrubber").max;
  const number = state.idToNumber.get(id);
  const live = number !== undefined ? state.live.get(number) : null;
  // A fork's parent follows: its final image, or its x̂₀ at the same step.
  const parent = state.selectedInfo && state.selectedInfo.request ? state.selectedInfo.request.parent : null;
  if (parent) {
    $("parent-frame").src = withToken("/api/runs/" + parent + ($("show-final").checked ? "/image.png" : "/steps/" + (step - 1)));
  }
  if ($("show-final").checked) {
    $("frame").src = withToken("/api/runs/" + id + "/image.png");
  } else if (live && live.frames.has(step)) {
    $("frame").src = live.frames.get(step);
  } else {
    $("frame").src = withToken("/api/runs/" + id + "/steps/" + (step - 1));
  }
  loadMaps(step);
}

// ---- words and their maps -----------------------------------------------------------------------

let mapsTimer = null;
function loadMaps(step) {
  clearTimeout(mapsTimer);
  mapsTimer = setTimeout(async () => {
    const id = state.selected;
    const key = id + "@" + step;
    if (state.mapsKey === key) return;
    let body;
    try { body = await api("/api/runs/" + id + "/maps?upto=" + (step - 1)); } catch (e) { return; }
    if (state.selected !== id) return;
    const raw = Uint8Array.from(atob(body.maps), (c) => c.charCodeAt(0));
    state.maps = { words: body.words, width: body.width, height: body.height, raw };
    state.mapsKey = key;
    if (state.linkWord) { const i = body.words.indexOf(state.linkWord); if (i >= 0) state.word = i; state.linkWord = null; }
    drawWords();
    drawOverlay();
  }, 120);
}

function fillMergeChoices() {
  const words = state.maps.words;
  const panel = $("merge");
  panel.hidden = words.length < 2;
  for (const [id, pick] of [["merge-a", 0], ["merge-b", 1]]) {
    const select = $(id);
    if (select.options.length === words.length && [...select.options].every((o, i) => o.value === words[i])) continue;
    select.replaceChildren(...words.map((w) => new Option(w, w)));
    // Nouns are likelier subjects than "a" or "and": start from the last two distinct words.
    const distinct = [...new Set(words)].filter((w) => w.length > 2);
    const guess = distinct.length >= 2 ? distinct[distinct.length - 2 + pick] : words[pick];
    select.value = guess;
  }
}

async function checkMerge() {
  const a = $("merge-a").value, b = $("merge-b").value, out = $("merge-verdict");
  out.classList.remove("merged");
  $("remedy").hidden = true;
  if (a === b) { out.textContent = "Choose two different words."; return; }
  out.textContent = "Measuring…";
  try {
    const r = await api("/api/runs/" + state.selected + "/merge?a=" + encodeURIComponent(a) + "&b=" + encodeURIComponent(b));
    out.textContent = r.verdict + (r.note ? " " + r.note : "");
    out.classList.toggle("merged", r.merged);
    $("remedy").hidden = false;
    $("remedy").textContent = "Try the remedy: keep " + a + " and " + b + " apart (same seed)";
    $("remedy").dataset.subjects = JSON.stringify([a, b]);
  } catch (e) { out.textContent = e.message; }
}

async function tryRemedy() {
  const r = state.selectedInfo.request;
  const body = { prompt: r.prompt, negative_prompt: r.negative_prompt, seed: r.seed, steps: r.steps, guidance: r.guidance,
                 sampler: r.sampler, width: r.width, height: r.height, parent: state.selected,
                 separate: JSON.parse($("remedy").dataset.subjects), embeddings: r.embeddings || [] };
  if (r.schedule) body.schedule = r.schedule;
  try {
    const queued = await api("/api/runs", { method: "POST", body: JSON.stringify(body) });
    state.mine.add(queued.id);
    selectRun(queued.id, true);
    refreshRuns();
  } catch (e) { $("merge-verdict").textContent = e.message; }
}

function drawWords() {
  fillMergeChoices();
  const box = $("words");
  if (box.children.length === state.maps.words.length) {
    [...box.children].forEach((b, i) => b.classList.toggle("active", i === state.word));
    return;
  }
  box.replaceChildren();
  state.maps.words.forEach((word, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = word;
    b.classList.toggle("active", i === state.word);
    b.addEventListener("click", () => { state.word = state.word === i ? null : i; drawWords(); drawOverlay(); });
    box.append(b);
  });
}

// A perceptual ramp (dark purple → orange → yellow) with alpha rising with the value.
function ramp(v) {
  const stops = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
  const x = Math.min(Math.max(v, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

function drawOverlay() {
  const canvas = $("overlay");
  const m = state.maps;
  if (!m || state.word === null) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); return; }
  canvas.width = m.width;
  canvas.height = m.height;
  const n = m.width * m.height, base = state.word * n;
  // DAAM's display: the word's own map, min–max normalised.
  let top = 0, bottom = 255;
  for (let i = 0; i < n; i++) { top = Math.max(top, m.raw[base + i]); bottom = Math.min(bottom, m.raw[base + i]); }
  const span = Math.max(top - bottom, 1);
  const image = canvas.getContext("2d").createImageData(m.width, m.height);
  for (let i = 0; i < n; i++) {
    const v = (m.raw[base + i] - bottom) / span;
    const [r, g, b] = ramp(v);
    // Low attention stays see-through, so the picture shows where the word does not land.
    image.data.set([r, g, b, Math.round(215 * Math.pow(v, 1.6))], i * 4);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function rankAt(event) {
  const m = state.maps;
  if (!m) return;
  const rect = $("overlay").getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * m.width);
  const y = Math.floor((event.clientY - rect.top) / rect.height * m.height);
  if (x < 0 || y < 0 || x >= m.width || y >= m.height) return;
  const n = m.width * m.height, p = y * m.width + x;
  const values = m.words.map((w, i) => ({ w, v: m.raw[i * n + p] }));
  const total = values.reduce((s, a) => s + a.v, 0) || 1;
  values.sort((a, b) => b.v - a.v);
  const out = $("ranking");
  out.replaceChildren();
  out.append("At this pixel: ");
  values.slice(0, 5).forEach((a, i) => {
    const b = document.createElement("b");
    b.textContent = a.w;
    out.append(b, " " + Math.round(100 * a.v / total) + "%" + (i < 4 ? " · " : ""));
  });
}

// ---- fork and compare ---------------------------------------------------------------------------

function showParent(request) {
  const box = $("parent-box"), diff = $("diff");
  const paired = !!(request && request.parent);
  $("stage").classList.toggle("pair", paired);
  if (!paired) { box.hidden = true; diff.hidden = true; return; }
  box.hidden = false;
  api("/api/runs/" + request.parent).then((p) => {
    diff.hidden = false;
    if (request.separate && p.request.prompt === request.prompt) {
      $("parent-caption").textContent = "before the remedy (same seed)";
      diff.textContent = "Left: " + request.separate.join(" and ") + " kept apart, a column each; right: the run as it was.";
    } else {
      $("parent-caption").textContent = "forked from: " + p.request.prompt;
      diff.replaceChildren(...wordDiff(p.request.prompt, request.prompt));
    }
  }).catch(() => {});
}

// Word-level diff (longest common subsequence): removed words struck out, added ones marked.
function wordDiff(before, after) {
  const a = before.split(/\s+/).filter(Boolean), b = after.split(/\s+/).filter(Boolean);
  const L = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  const span = (text, cls) => { const s = document.createElement("span"); s.textContent = text; if (cls) s.className = cls; return s; };
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push(span(a[i]), " "); i++; j++; }
    else if (i < a.length && (j >= b.length || L[i + 1][j] >= L[i][j + 1])) { out.push(span(a[i], "removed"), " "); i++; }
    else { out.push(span(b[j], "added"), " "); j++; }
  }
  return out;
}

function fork() {
  const info = state.selectedInfo;
  if (!info) return;
  const r = info.request;
  $("prompt").value = r.prompt;
  $("negative").value = r.negative_prompt || "";
  $("seed").value = r.seed;
  $("steps").value = r.steps;
  $("guidance").value = r.guidance;
  $("sampler").value = r.sampler;
  $("width").value = r.width;
  $("height").value = r.height;
  setEmbeddings(r.embeddings);
  state.parent = info.id;
  const note = $("fork-note");
  note.hidden = false;
  note.textContent = "Fork of run " + info.id + " (seed " + r.seed + "): edit the prompt and start; the two are shown side by side.";
  $("prompt").focus();
}

// ---- a dropped PNG: its recipe into the form (A1111's or Pareidolia's infotext) ----------------

async function importFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  const isPNG = bytes[0] === 0x89 && bytes[1] === 0x50;
  const body = isPNG ? { png_base64: btoa(binary) } : { text: new TextDecoder().decode(bytes) };
  const note = $("fork-note");
  try {
    const r = await api("/api/infotext", { method: "POST", body: JSON.stringify(body) });
    $("prompt").value = r.prompt;
    $("negative").value = r.negative_prompt || "";
    followTriggers();
    for (const key of ["seed", "steps", "guidance", "width", "height"]) if (r[key] !== undefined) $(key).value = r[key];
    if (r.sampler) {
      if (![...$("sampler").options].some((o) => o.value === r.sampler)) $("sampler").append(new Option(r.sampler, r.sampler));
      $("sampler").value = r.sampler;
    }
    state.parent = null;
    note.hidden = false;
    note.textContent = "Loaded the recipe of " + file.name + (r.warnings.length ? ". " + r.warnings.join("; ") : ".");
  } catch (e) {
    note.hidden = false;
    note.textContent = file.name + ": " + e.message;
  }
}

// ---- the form -------------------------------------------------------------------------------

// The embeddings the server offers, a checkbox each (the request names triggers, never files).
// The server's defaults for what a run leaves out (the demo model's card setting when it serves
// that model) also start the form.
async function loadState() {
  let state;
  try { state = await api("/api/state"); } catch (e) { return; }
  const offered = state.embeddings || [];
  const d = state.defaults;
  if (d) {
    if (Number.isFinite(d.steps)) $("steps").value = d.steps;
    if (Number.isFinite(d.guidance)) $("guidance").value = d.guidance;
    if ([...$("sampler").options].some((o) => o.value === d.sampler)) $("sampler").value = d.sampler;
  }
  const box = $("embeddings");
  for (const trigger of offered) {
    const label = document.createElement("label");
    label.className = "toggle";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = trigger;
    input.dataset.typed = "false";
    label.append(input, " " + trigger);  // text, never HTML
    box.append(label);
  }
  box.hidden = offered.length === 0;
}

function embeddingBoxes() { return [...$("embeddings").querySelectorAll("input[type=checkbox]")]; }
function chosenEmbeddings() { return embeddingBoxes().filter((b) => b.checked).map((b) => b.value); }
function setEmbeddings(triggers) {
  for (const b of embeddingBoxes()) { b.checked = (triggers || []).includes(b.value); b.dataset.typed = String(b.checked); }
}

// A trigger typed into a prompt ticks its box; deleted, unticks it. Ticking by hand is kept.
function followTriggers() {
  const text = " " + $("prompt").value + " " + $("negative").value + " ";
  for (const b of embeddingBoxes()) {
    const escaped = b.value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const typed = new RegExp("(^|[^\\w])" + escaped + "($|[^\\w])", "i").test(text);
    if (typed !== (b.dataset.typed === "true")) b.checked = typed;
    b.dataset.typed = String(typed);
  }
}

async function start(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  const number = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };
  const body = {
    prompt: $("prompt").value, negative_prompt: $("negative").value, seed: number("seed"), steps: number("steps"),
    guidance: number("guidance"), sampler: $("sampler").value, width: number("width"), height: number("height"),
    embeddings: chosenEmbeddings(),
  };
  if (state.parent) body.parent = state.parent;
  try {
    const queued = await api("/api/runs", { method: "POST", body: JSON.stringify(body) });
    state.mine.add(queued.id);
    selectRun(queued.id, true);  // it may have started (or ended) before this answer arrived
    state.parent = null;
    $("fork-note").hidden = true;
    setStatus(queued.position === 0 ? "Starting…" : "Queued: " + (queued.position + 1) + " in line.");
    refreshRuns();
    updateCancel();
  } catch (e) {
    $("form-error").textContent = e.message;
  }
}

function updateCancel() {
  const target = [...state.mine][0] || (state.selected === state.running ? state.running : null);
  $("cancel").disabled = !target;
  $("cancel").dataset.id = target || "";
}

async function cancel() {
  const id = $("cancel").dataset.id;
  if (!id) return;
  try { await api("/api/runs/" + id + "/cancel", { method: "POST", body: "{}" }); } catch (e) { $("form-error").textContent = e.message; }
}

function setStatus(text) { $("status").textContent = text; }
function formatSeconds(s) { return s < 60 ? Math.round(s) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s"; }

document.addEventListener("DOMContentLoaded", () => {
  $("run-form").addEventListener("submit", start);
  $("prompt").addEventListener("input", followTriggers);
  $("negative").addEventListener("input", followTriggers);
  loadState();
  $("cancel").addEventListener("click", cancel);
  $("fork").addEventListener("click", fork);
  $("merge-check").addEventListener("click", checkMerge);
  $("remedy").addEventListener("click", tryRemedy);
  $("scrubber").addEventListener("input", (e) => { $("show-final").checked = false; showStep(Number(e.target.value)); });
  $("show-final").addEventListener("change", () => showStep(Number($("scrubber").value)));
  $("overlay").addEventListener("mousemove", rankAt);
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dropping"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dropping");
    if (e.dataTransfer.files.length) importFile(e.dataTransfer.files[0]);
  });
  connect();
  refreshRuns();
  // A link to a run: #run=ID (&word=WORD to show that word's map, &step=N).
  const link = new URLSearchParams(location.hash.slice(1));
  if (link.get("run")) {
    state.linkWord = link.get("word");
    selectRun(link.get("run"), false).then(() => {
      if (link.get("step")) { $("scrubber").value = link.get("step"); showStep(Number(link.get("step"))); }
    });
  }
});
