// The page: picture or video in (pick, drop, paste, or the model's samples), or a live stream
// (live.ts), questions in, streamed answers out, one conversation per picture. Everything heavy runs
// in the worker; this file only draws what the worker reports (and a video's frames, which a worker
// cannot draw).
import { liveMode, type LiveSource } from './live.js';
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
  sampleClip: $<HTMLButtonElement>('sample-clip'),
  conversation: $('conversation'),
  turns: $('turns'),
  question: $<HTMLTextAreaElement>('question'),
  suggestions: $('suggestions'),
  keepTurns: $<HTMLInputElement>('keep-turns'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  ask: $<HTMLButtonElement>('ask'),
  stop: $<HTMLButtonElement>('stop'),
  stats: $('stats'),
  liveLine: $('live-line'),
  liveWindow: $<HTMLInputElement>('live-window'),
  liveStop: $<HTMLButtonElement>('live-stop'),
};

let loaded = false;
let hasPicture = false;
let answering = false;
let current: { li: HTMLLIElement; answer: HTMLElement } | undefined;
let previewUrl: string | undefined;
/** The models scripts/prepare-models.mjs listed (models/index.json), if the server has the file. */
let models: ModelEntry[] = [];
/** What models/index.json says about the loaded model, if it lists it. */
let entry: ModelEntry | undefined;
/** The picture the conversation is about: its suggested questions and the conversation line depend on it. */
let picture: { kind: Picture['kind'] | 'live'; name: string } | undefined;

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
function showModel(listed: ModelEntry | undefined): void {
  entry = listed;
  ui.modelAbout.hidden = !entry?.about;
  ui.modelAbout.textContent = entry?.about ? `${entry.name}: ${entry.about}.` : '';
  ui.keepTurns.checked = !entry?.singleTurn;
  for (const [button, url] of [[ui.sample, entry?.sample], [ui.sampleClip, entry?.sampleClip]] as const) {
    button.hidden = !url;
    button.dataset.url = url ? new URL(url, location.href).href : '';
  }
  shownSet = undefined;
  showSuggestions();
}

/** Which suggestions are on show: the question box is refilled only when they change, not with every picture. */
let shownSet: { entry?: ModelEntry; clip: boolean } | undefined;

/** The model's suggested questions for the picture: its clip questions while the picture is a video. */
function showSuggestions(): void {
  const clip = (picture?.kind === 'video' || picture?.kind === 'live') && !!entry?.clipQuestions?.length;
  if (shownSet && shownSet.entry === entry && shownSet.clip === clip) return;
  shownSet = { entry, clip };
  const questions = (clip ? entry?.clipQuestions : entry?.questions) ?? [];
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
}

/** One conversation per picture: say which, how many turns, and whether a question sees the earlier ones. */
function showConversation(): void {
  const turns = ui.turns.children.length;
  ui.conversation.dataset.turns = String(turns);
  const how = picture?.kind === 'live' ? 'each question sees the earlier turns and the window at that moment' : ui.keepTurns.checked ? 'each question sees the earlier turns' : 'each question is asked on its own';
  ui.conversation.textContent = !picture ? '' : `Conversation about ${picture.name}: ${turns} turn${turns === 1 ? '' : 's'}${turns ? ` (${how})` : ''}. A new picture starts a new one.`;
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
        const w = m.window;
        // Live frames are encoded as they arrive, during an answer too: the encoder's count says nothing about the question.
        const seen = w ? `saw ${w.frames} frame${w.frames === 1 ? '' : 's'}, ${w.from.toFixed(1)}–${w.to.toFixed(1)} s (each encoded as it arrived)` : m.picturesEncoded ? 'picture encoded' : 'picture not encoded again';
        meta.textContent = m.stopped ? 'stopped' : `${m.tokens} tokens · first token after ${Math.round(m.timeToFirstTokenMs)} ms · ${m.tokensPerSecond.toFixed(1)} tokens/s · ${seen}`;
        // The answer's token ids, their log-probabilities and the window it saw, for a test to compare with Node on the same frames.
        if (m.ids) current.li.dataset.ids = m.ids.join(',');
        if (m.logprobs) current.li.dataset.logprobs = m.logprobs.join(',');
        if (w) Object.assign(current.li.dataset, { windowFrames: String(w.frames), windowFrom: String(w.from), windowTo: String(w.to) });
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
    case 'live-stats':
      live.stats(m);
      break;
    case 'cache-cleared':
      status(ui.loadLine, `Cache cleared (${mb(m.freedBytes)} freed). The next load downloads the model again.`);
      break;
  }
};

/** A new conversation (no turns yet) about a picture, a clip or a live source. */
function newConversation(): void {
  ui.dropHint.hidden = true;
  ui.turns.replaceChildren();
  hasPicture = false;
  picture = undefined;
  showConversation();
  refresh();
}

const live = liveMode({
  send,
  video: ui.video,
  line: ui.liveLine,
  windowSeconds: () => Math.max(1, Number(ui.liveWindow.value) || 8),
  started(name) {
    newConversation();
    ui.img.hidden = true;
    ui.video.removeAttribute('src');
    status(ui.pictureLine, `${name}, live: questions are about the frames in the window when they are asked.`);
    picture = { kind: 'live', name: `${name} (live)` };
    hasPicture = true;
    ui.keepTurns.disabled = true;
    ui.liveStop.hidden = false;
    showSuggestions();
    showConversation();
    refresh();
  },
  stopped() {
    ui.keepTurns.disabled = false;
    ui.liveStop.hidden = true;
    if (picture?.kind === 'live') {
      hasPicture = false;
      status(ui.pictureLine, 'The live stream ended: start it again, or take a picture.');
      refresh();
    }
  },
});
for (const source of ['camera', 'screen', 'scene'] as LiveSource[]) $(`live-${source}`).addEventListener('click', () => void live.start(source));
ui.liveStop.addEventListener('click', () => live.stop());

async function usePicture(file: File): Promise<void> {
  live.stop();
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  newConversation();
  let forWorker: Picture;
  if (file.type.startsWith('video/')) {
    ui.img.hidden = true;
    ui.video.hidden = false;
    ui.video.src = previewUrl;
    status(ui.pictureLine, `${file.name}: reading frames…`);
    const frames = await videoFrames(ui.video);
    forWorker = { kind: 'video', frames, name: file.name };
    status(ui.pictureLine, `${file.name}: ${frames.length} frame(s), one per second (at most ${MAX_FRAMES}), one vision token each. Each question reads the frames again.`);
    send({ type: 'picture', picture: forWorker }, frames);
  } else if (file.type.startsWith('image/')) {
    ui.video.hidden = true;
    ui.img.hidden = false;
    ui.img.src = previewUrl;
    forWorker = { kind: 'image', blob: file, name: file.name };
    status(ui.pictureLine, `${file.name}: encoded once, on the first question; follow-ups reuse it.`);
    send({ type: 'picture', picture: forWorker });
  } else {
    status(ui.pictureLine, `${file.name} is neither an image nor a video`, true);
    return;
  }
  picture = { kind: forWorker.kind, name: file.name };
  hasPicture = true;
  showSuggestions();
  showConversation();
  refresh();
}

function pick(files: FileList | null | undefined): void {
  const file = files?.[0];
  if (file) usePicture(file).catch((err) => status(ui.pictureLine, (err as Error).message, true));
}

ui.file.addEventListener('change', () => pick(ui.file.files));
/** The model's sample picture or clip, fetched and taken as if picked (a blob: URL, so the <video> can seek it). */
async function useSample(button: HTMLButtonElement, what: string, type: string): Promise<void> {
  try {
    const url = button.dataset.url as string;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    await usePicture(new File([blob], url.split('/').pop() || what, { type: blob.type || type }));
  } catch (err) {
    status(ui.pictureLine, `the ${what} did not load: ${(err as Error).message}`, true);
  }
}
ui.sample.addEventListener('click', () => useSample(ui.sample, 'sample picture', 'image/png'));
ui.sampleClip.addEventListener('click', () => useSample(ui.sampleClip, 'sample clip', 'video/mp4'));
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
  showConversation();
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
ui.keepTurns.addEventListener('change', showConversation);

// The model: ?model=URL, else the first one scripts/prepare-models.mjs listed (the trained demo model when there is one).
async function start(): Promise<void> {
  ui.device.value = query.get('device') ?? 'auto';
  const index = await fetch('models/index.json').then((r) => (r.ok ? r.json() : undefined)).catch(() => undefined);
  models = (index as { models?: ModelEntry[] } | undefined)?.models ?? [];
  ui.modelUrl.value = query.get('model') ?? models[0]?.url ?? 'models/';
  loadModel();
}
void start();
