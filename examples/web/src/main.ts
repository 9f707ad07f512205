// The page: picture in (pick, drop, paste), question in, streamed answer out. Everything heavy runs
// in the worker; this file only draws what the worker reports.
import type { FileProgress, FromWorker, ModelEntry, Picture, ToWorker } from './protocol.js';
import { MAX_FRAMES, videoFrames } from './video.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);

const query = new URLSearchParams(location.search);
const ui = {
  modelUrl: $<HTMLInputElement>('model-url'),
  device: $<HTMLSelectElement>('device'),
  load: $<HTMLButtonElement>('load'),
  clearCache: $<HTMLButtonElement>('clear-cache'),
  modelAbout: $('model-about'),
  deviceLine: $('device-line'),
  progress: $('progress'),
  progressFill: $('progress-fill'),
  progressText: $('progress-text'),
  progressFiles: $('progress-files'),
  loadLine: $('load-line'),
  drop: $('drop'),
  file: $<HTMLInputElement>('file'),
  dropHint: $('drop-hint'),
  img: $<HTMLImageElement>('preview-img'),
  video: $<HTMLVideoElement>('preview-video'),
  pictureLine: $('picture-line'),
  sample: $<HTMLButtonElement>('sample'),
  turns: $('turns'),
  question: $<HTMLTextAreaElement>('question'),
  suggestions: $('suggestions'),
  keepTurns: $<HTMLInputElement>('keep-turns'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  ask: $<HTMLButtonElement>('ask'),
  stop: $<HTMLButtonElement>('stop'),
  stats: $('stats'),
};

let loaded = false;
let hasPicture = false;
let answering = false;
let current: { li: HTMLLIElement; answer: HTMLElement } | undefined;
let previewUrl: string | undefined;
/** The models scripts/prepare-models.mjs listed (models/index.json), if the server has the file. */
let models: ModelEntry[] = [];

function status(el: HTMLElement, text: string, error = false): void {
  el.textContent = text;
  el.classList.toggle('error', error);
}

function refresh(): void {
  ui.ask.disabled = !loaded || !hasPicture || answering;
  ui.stop.disabled = !answering;
  ui.load.disabled = answering;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function drawProgress(files: FileProgress[], note?: string): void {
  const total = files.reduce((n, f) => n + f.total, 0);
  const done = files.reduce((n, f) => n + (f.cached ? f.total : f.done), 0);
  ui.progress.hidden = false;
  ui.progressFill.style.width = `${total ? (100 * done) / total : 0}%`;
  const cached = files.filter((f) => f.cached).length;
  status(ui.progressText, `${mb(done)} of ${mb(total)}${cached ? ` (${cached} of ${files.length} files from the cache)` : ''}${note ? ` — ${note}` : ''}`);
  ui.progressFiles.replaceChildren(
    ...files.map((f) => {
      const li = document.createElement('li');
      li.textContent = `${f.name}: ${f.cached ? 'cached' : `${mb(f.done)} / ${mb(f.total)}`}`;
      return li;
    }),
  );
}

function loadModel(): void {
  loaded = false;
  refresh();
  status(ui.loadLine, 'Loading…');
  const url = new URL(ui.modelUrl.value, location.href).href;
  showModel(models.find((m) => new URL(m.url, location.href).href === url));
  send({ type: 'load', baseUrl: url, device: ui.device.value as 'auto' | 'webgpu' | 'wasm' });
}

/** What the page knows of the model from models/index.json: what it is, questions it answers, a sample picture. */
function showModel(entry: ModelEntry | undefined): void {
  ui.modelAbout.hidden = !entry?.about;
  ui.modelAbout.textContent = entry?.about ? `${entry.name}: ${entry.about}.` : '';
  const questions = entry?.questions ?? [];
  ui.suggestions.hidden = questions.length === 0;
  ui.suggestions.replaceChildren(
    ...questions.map((q) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = q;
      b.addEventListener('click', () => {
        ui.question.value = q;
        ui.question.focus();
      });
      return b;
    }),
  );
  if (questions.length) ui.question.value = questions[0];
  ui.keepTurns.checked = !entry?.singleTurn;
  ui.sample.hidden = !entry?.sample;
  ui.sample.dataset.url = entry?.sample ? new URL(entry.sample, location.href).href : '';
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'device':
      ui.deviceLine.dataset.device = m.choice.device;
      status(ui.deviceLine, `Device: ${m.choice.device === 'webgpu' ? 'WebGPU' : 'WASM'}, ${m.choice.dtype} — ${m.choice.reason}`);
      break;
    case 'progress':
      drawProgress(m.files, m.note);
      break;
    case 'loaded':
      loaded = true;
      ui.loadLine.dataset.state = 'loaded';
      status(ui.loadLine, `Loaded ${m.modelName} in ${(m.loadMs / 1000).toFixed(1)} s (${m.cache}).`);
      refresh();
      break;
    case 'load-failed': {
      ui.loadLine.dataset.state = 'failed';
      status(ui.loadLine, `Loading failed: ${m.message}. Files that arrived whole are kept; Load again to resume.`, true);
      ui.load.textContent = 'Retry';
      refresh();
      break;
    }
    case 'token':
      if (current) current.answer.textContent += m.text;
      break;
    case 'answer': {
      answering = false;
      if (current) {
        current.answer.textContent = m.text;
        current.answer.classList.toggle('stopped', m.stopped);
        current.li.dataset.done = '1';
        const meta = document.createElement('div');
        meta.className = 'meta';
        meta.textContent = m.stopped
          ? 'stopped'
          : `${m.tokens} tokens · first token after ${Math.round(m.timeToFirstTokenMs)} ms · ${m.tokensPerSecond.toFixed(1)} tokens/s · ${m.picturesEncoded ? 'picture encoded' : 'picture not encoded again'}`;
        current.li.append(meta);
      }
      status(ui.stats, `Pictures through CLIP so far: ${m.encoderRuns}`);
      ui.stats.dataset.encoderRuns = String(m.encoderRuns);
      current = undefined;
      refresh();
      break;
    }
    case 'error':
      answering = false;
      if (current) current.answer.textContent ||= '—';
      current = undefined;
      status(ui.stats, m.message, true);
      refresh();
      break;
    case 'cache-cleared':
      status(ui.loadLine, `Cache cleared (${mb(m.freedBytes)} freed). The next load downloads the model again.`);
      break;
  }
};

async function usePicture(file: File): Promise<void> {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  ui.dropHint.hidden = true;
  ui.turns.replaceChildren();
  hasPicture = false;
  refresh();
  let picture: Picture;
  if (file.type.startsWith('video/')) {
    ui.img.hidden = true;
    ui.video.hidden = false;
    ui.video.src = previewUrl;
    status(ui.pictureLine, `${file.name}: reading frames…`);
    const frames = await videoFrames(ui.video);
    picture = { kind: 'video', frames, name: file.name };
    status(ui.pictureLine, `${file.name}: ${frames.length} frame(s), one per second (at most ${MAX_FRAMES}), one vision token each. Each question reads the frames again.`);
    send({ type: 'picture', picture }, frames);
  } else if (file.type.startsWith('image/')) {
    ui.video.hidden = true;
    ui.img.hidden = false;
    ui.img.src = previewUrl;
    picture = { kind: 'image', blob: file, name: file.name };
    status(ui.pictureLine, `${file.name}: encoded once, on the first question; follow-ups reuse it.`);
    send({ type: 'picture', picture });
  } else {
    status(ui.pictureLine, `${file.name} is neither an image nor a video`, true);
    return;
  }
  hasPicture = true;
  refresh();
}

function pick(files: FileList | null | undefined): void {
  const file = files?.[0];
  if (file) usePicture(file).catch((err) => status(ui.pictureLine, (err as Error).message, true));
}

ui.file.addEventListener('change', () => pick(ui.file.files));
ui.sample.addEventListener('click', async () => {
  try {
    const url = ui.sample.dataset.url as string;
    const blob = await (await fetch(url)).blob();
    await usePicture(new File([blob], url.split('/').pop() || 'sample.png', { type: blob.type || 'image/png' }));
  } catch (err) {
    status(ui.pictureLine, `the sample picture did not load: ${(err as Error).message}`, true);
  }
});
ui.drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  ui.drop.classList.add('over');
});
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  pick(e.dataTransfer?.files);
});
document.addEventListener('paste', (e) => {
  const file = [...(e.clipboardData?.files ?? [])].find((f) => /^(image|video)\//.test(f.type));
  if (file) usePicture(file).catch((err) => status(ui.pictureLine, (err as Error).message, true));
});

$<HTMLFormElement>('model-form').addEventListener('submit', (e) => {
  e.preventDefault();
  ui.load.textContent = 'Load';
  loadModel();
});
ui.clearCache.addEventListener('click', () => send({ type: 'clear-cache' }));
$<HTMLFormElement>('ask-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const question = ui.question.value.trim();
  if (!question || ui.ask.disabled) return;
  const li = document.createElement('li');
  const q = document.createElement('div');
  q.className = 'q';
  q.textContent = question;
  const answer = document.createElement('div');
  answer.className = 'a';
  li.append(q, answer);
  ui.turns.append(li);
  current = { li, answer };
  answering = true;
  status(ui.stats, '');
  refresh();
  send({ type: 'ask', question, maxNewTokens: Number(ui.maxTokens.value) || 64, newConversation: !ui.keepTurns.checked });
});
ui.question.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $<HTMLFormElement>('ask-form').requestSubmit();
  }
});
ui.stop.addEventListener('click', () => send({ type: 'stop' }));

// The model: ?model=URL, else the first one scripts/prepare-models.mjs listed (the trained demo model when there is one).
async function start(): Promise<void> {
  ui.device.value = query.get('device') ?? 'auto';
  const index = await fetch('models/index.json').then((r) => (r.ok ? r.json() : undefined)).catch(() => undefined);
  models = (index as { models?: ModelEntry[] } | undefined)?.models ?? [];
  ui.modelUrl.value = query.get('model') ?? models[0]?.url ?? 'models/';
  loadModel();
}
void start();
