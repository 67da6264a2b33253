// The varcode page: choose a class and settings, generate with live per-scale progress, inpaint a
// picture with a painted mask. Plain JS over the server's own API (/v1/models, /v1/jobs).
'use strict';

const $ = (id) => document.getElementById(id);
const state = { model: null, classId: null, running: null };

function setStatus(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

function authHeaders() {
  const key = $('api-key').value.trim();
  return key ? { Authorization: 'Bearer ' + key } : {};
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!res.ok) {
    let message = res.status + ' ' + res.statusText;
    try {
      const body = await res.json();
      if (body.error && body.error.message) message = body.error.message;
    } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return res;
}

// ---- model and class list ----

function fold(s) { return s.toLowerCase().replace(/[^a-z0-9]/g, ''); }

function renderClasses() {
  const q = fold($('class-search').value);
  const list = $('class-list');
  list.replaceChildren();
  for (const c of state.model.classes) {
    if (q && !fold(c.name).includes(q) && String(c.id) !== q) continue;
    const li = document.createElement('li');
    li.dataset.class = c.id;
    li.setAttribute('role', 'option');
    if (c.id === state.classId) li.className = 'selected';
    const num = document.createElement('span');
    num.className = 'num';
    num.textContent = c.id;
    li.append(num, c.name);
    li.addEventListener('click', () => chooseClass(c.id));
    list.append(li);
  }
}

function chooseClass(id) {
  state.classId = id;
  const c = state.model.classes[id];
  $('class-chosen').textContent = c.name + ' (' + c.id + ')';
  renderClasses();
  updateButtons();
}

async function loadModel() {
  try {
    const res = await api('/v1/models');
    const m = (await res.json()).data[0];
    state.model = m;
    const kind = m.kind === 'code' ? 'CoDe pair (' + m.files.drafter + ' + ' + m.files.refiner + ')' : 'VAR (' + m.files.model + ')';
    $('model-info').textContent = kind + ' · ' + m.resolution + '×' + m.resolution + ' · ' + m.num_classes + ' classes · ' + m.compute_dtype;
    $('cfg').placeholder = m.defaults.cfg;
    $('top-k').placeholder = m.defaults.top_k;
    $('top-p').placeholder = m.defaults.top_p;
    $('temperature').placeholder = [...new Set(m.defaults.temperature)].length === 1 ? m.defaults.temperature[0] : m.defaults.temperature.join(',');
    $('n').max = m.limits.max_images_per_request;
    const ds = $('draft-steps');
    ds.replaceChildren();
    if (m.draft_steps) {
      for (let s = m.draft_steps.min; s <= m.draft_steps.max; s++) {
        const o = document.createElement('option');
        o.value = s;
        o.textContent = s + (s === m.draft_steps.default ? ' (default)' : '');
        if (s === m.draft_steps.default) o.selected = true;
        ds.append(o);
      }
    } else {
      ds.disabled = true;
      ds.append(new Option('– (single VAR model)', ''));
    }
    chooseClass(0);
    setStatus('ready');
  } catch (e) {
    setStatus(e.status === 401 ? 'the server wants an API key: enter it above' : 'cannot read the model: ' + e.message, true);
  }
}

// ---- settings ----

function settings() {
  const s = {};
  const seed = $('seed').value.trim();
  if (seed) s.seed = /^\d+$/.test(seed) && Number.isSafeInteger(Number(seed)) ? Number(seed) : seed;
  const num = (id, key) => { const v = $(id).value.trim(); if (v !== '') s[key] = Number(v); };
  num('cfg', 'cfg');
  num('top-k', 'top_k');
  num('top-p', 'top_p');
  const t = $('temperature').value.trim();
  if (t) s.temperature = t.includes(',') ? t.split(',').map(Number) : Number(t);
  if ($('smooth').checked) s.smooth = true;
  const ds = $('draft-steps');
  if (!ds.disabled && state.model && Number(ds.value) !== state.model.draft_steps.default) s.draft_steps = Number(ds.value);
  return s;
}

// ---- jobs and progress ----

function renderProgress(job) {
  const bar = $('progress');
  const total = job.progress.num_scales || (state.model ? state.model.schedule.length : 0);
  bar.replaceChildren();
  const p = job.progress;
  for (let i = 0; i < total; i++) {
    const seg = document.createElement('span');
    if (job.state === 'done' || p.stage === 'vae' || (p.stage && i <= p.scale)) seg.className = p.stage === 'vae' || job.state === 'done' ? 'vae' : p.stage;
    bar.append(seg);
  }
  let text = job.state;
  if (job.state === 'queued') text = 'queued (position ' + (job.queue_position + 1) + ')';
  else if (job.state === 'running' && p.stage === 'vae') text = 'decoding the images';
  else if (job.state === 'running' && p.stage) text = p.stage + ' scale ' + (p.scale + 1) + '/' + p.num_scales;
  if (job.n > 1) text += ' · ' + job.images_done + '/' + job.n + ' images';
  $('progress-text').textContent = text;
}

async function imageUrl(path) {
  const res = await api(path);
  return URL.createObjectURL(await res.blob());
}

async function runJob(body, onImage) {
  const res = await api('/v1/jobs', body instanceof FormData ? { method: 'POST', body }
                                                             : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  let job = await res.json();
  state.running = job.id;
  updateButtons();
  const shown = new Set();
  const t0 = performance.now();
  try {
    for (;;) {
      renderProgress(job);
      for (const path of job.images) {
        if (shown.has(path)) continue;
        shown.add(path);
        const i = Number(path.match(/(\d+)\.png$/)[1]);
        onImage(await imageUrl(path), i, job);
      }
      if (job.state === 'done') return ((performance.now() - t0) / 1000).toFixed(2);
      if (job.state === 'failed') throw new Error(job.error || 'generation failed');
      if (job.state === 'cancelled') throw new Error('cancelled');
      // A long poll: answered as soon as the job changes (each scale), so nothing is missed by waiting.
      job = await (await api('/v1/jobs/' + job.id + '?after=' + job.version)).json();
    }
  } finally {
    state.running = null;
    updateButtons();
  }
}

function figure(url, caption, name, actions = []) {
  const fig = document.createElement('figure');
  const img = document.createElement('img');
  img.src = url;
  img.alt = caption;
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.textContent = 'download';
  cap.append(document.createElement('br'), a, ...actions);
  fig.append(img, cap);
  return fig;
}

async function generate() {
  if (state.running) {
    await api('/v1/jobs/' + state.running, { method: 'DELETE' }).catch(() => {});
    return;
  }
  const body = { prompt: String(state.classId), n: Number($('n').value) || 1, ...settings() };
  const gallery = $('gallery');
  gallery.replaceChildren();
  setStatus('generating…');
  try {
    const secs = await runJob(body, (url, i, job) => {
      const c = state.model.classes[job.classes[i].class];
      const use = document.createElement('button');
      use.type = 'button';
      use.textContent = 'inpaint this';
      use.addEventListener('click', () => loadPicture(url));
      gallery.append(figure(url, c.name + ' · seed ' + job.seed + ' #' + i, 'varcode_' + job.seed + '_' + i + '.png', [use]));
    });
    setStatus('generated ' + gallery.children.length + ' image(s) in ' + secs + ' s');
  } catch (e) {
    setStatus('generation: ' + e.message, true);
  }
}

// ---- inpainting: the picture, the painted mask ----

const maskData = document.createElement('canvas');  // black = keep, white = regenerate (what is sent)
maskData.width = maskData.height = 256;
let hasPicture = false;

function clearMask() {
  const m = maskData.getContext('2d');
  m.fillStyle = '#000';
  m.fillRect(0, 0, 256, 256);
  $('mask').getContext('2d').clearRect(0, 0, 256, 256);
  updateCoverage();
}

function updateCoverage() {
  const px = maskData.getContext('2d').getImageData(0, 0, 256, 256).data;
  let on = 0;
  for (let i = 0; i < px.length; i += 4) on += px[i] > 0 ? 1 : 0;
  $('mask-coverage').textContent = 'mask: ' + Math.round((100 * on) / (256 * 256)) + '%';
  $('mask-coverage').dataset.pixels = on;
  updateButtons();
}

function loadPicture(src) {
  const img = new Image();
  img.onload = () => {
    const side = Math.min(img.naturalWidth, img.naturalHeight);
    const ctx = $('picture').getContext('2d');
    ctx.imageSmoothingEnabled = side > 256;
    ctx.clearRect(0, 0, 256, 256);
    ctx.drawImage(img, (img.naturalWidth - side) / 2, (img.naturalHeight - side) / 2, side, side, 0, 0, 256, 256);
    hasPicture = true;
    clearMask();
    setStatus('picture loaded: paint over what to regenerate');
  };
  img.onerror = () => setStatus('that file is not a picture this browser can read', true);
  img.src = src;
}

function paintAt(x0, y0, x1, y1) {
  const r = Number($('brush').value);
  // The overlay is opaque red under a translucent canvas, so that overlapping strokes do not add up.
  for (const [ctx, colour] of [[maskData.getContext('2d'), '#fff'], [$('mask').getContext('2d'), '#fa3c3c']]) {
    ctx.globalCompositeOperation = 'source-over';
    ctx.strokeStyle = colour;
    ctx.lineWidth = r;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }
}

function setupPainting() {
  const canvas = $('mask');
  let last = null;
  const pos = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * 256) / r.width, ((e.clientY - r.top) * 256) / r.height];
  };
  canvas.addEventListener('pointerdown', (e) => {
    if (!hasPicture) return;
    canvas.setPointerCapture(e.pointerId);
    last = pos(e);
    paintAt(...last, ...last);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = pos(e);
    paintAt(...last, ...p);
    last = p;
  });
  const end = () => { if (last) { last = null; updateCoverage(); } };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
}

const toBlob = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));

async function inpaint() {
  const form = new FormData();
  form.append('image', await toBlob($('picture')), 'picture.png');
  form.append('mask', await toBlob(maskData), 'mask.png');
  form.append('class', String(state.classId));
  for (const [k, v] of Object.entries(settings())) form.append(k, Array.isArray(v) ? v.join(',') : String(v));
  const out = $('edit-result');
  out.replaceChildren();
  setStatus('inpainting…');
  try {
    const secs = await runJob(form, (url, i, job) => {
      const c = state.model.classes[job.classes[0].class];
      out.append(figure(url, 'inpainted · ' + c.name + ' · seed ' + job.seed, 'varcode_edit_' + job.seed + '.png'));
    });
    setStatus('inpainted in ' + secs + ' s');
  } catch (e) {
    setStatus('inpainting: ' + e.message, true);
  }
}

function updateButtons() {
  const ready = state.model !== null && state.classId !== null;
  $('generate').textContent = state.running ? 'Cancel' : 'Generate';
  $('generate').disabled = !ready;
  $('inpaint').disabled = !ready || !hasPicture || state.running !== null || Number($('mask-coverage').dataset.pixels || 0) === 0;
}

// ---- wiring ----

$('api-key').value = localStorage.getItem('varcode-api-key') || '';
$('api-key').addEventListener('change', () => { localStorage.setItem('varcode-api-key', $('api-key').value.trim()); loadModel(); });
$('class-search').addEventListener('input', renderClasses);
$('class-search').addEventListener('keydown', (e) => {
  const first = $('class-list').querySelector('li');
  if (e.key === 'Enter' && first) chooseClass(Number(first.dataset.class));
});
$('seed-random').addEventListener('click', () => { $('seed').value = String(Math.floor(Math.random() * 2 ** 32)); });
$('generate').addEventListener('click', generate);
$('file').addEventListener('change', () => { const f = $('file').files[0]; if (f) loadPicture(URL.createObjectURL(f)); });
$('clear-mask').addEventListener('click', clearMask);
$('inpaint').addEventListener('click', inpaint);
setupPainting();
clearMask();
loadModel();
