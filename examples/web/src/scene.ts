// The built-in live source: an animated picture of the demo model's world (the shapes package's
// scenes: coloured circles, squares and triangles on white), drawn on a canvas and captured as a
// MediaStream. A red circle slides left and right above a blue square and a green triangle that stay.

/**
 * The shapes world's colours (COLOR_RGB of @llava-mini/shapes, whose entry loads sharp and so cannot
 * be imported in a browser): the model learned these names for these fills.
 */
const RED = 'rgb(215, 35, 35)';
const GREEN = 'rgb(35, 160, 50)';
const BLUE = 'rgb(35, 75, 215)';
const WIDTH = 320;
const HEIGHT = 240;
/** Seconds for the circle to cross and come back: a window of a few seconds sees it at several places. */
const PERIOD_S = 12;

/** What the scene shows, for the page to say and for questions whose answers are known. */
export const SCENE_ABOUT = 'a red circle sliding left and right above a blue square and a green triangle that stay';

function draw(ctx: CanvasRenderingContext2D, seconds: number): void {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  // As the shapes package draws them: a circle by its centre and radius, a square by its half side,
  // a triangle pointing up inside its box.
  const phase = (seconds / PERIOD_S) % 1;
  const cx = 50 + 220 * (phase < 0.5 ? 2 * phase : 2 - 2 * phase);
  ctx.fillStyle = RED;
  ctx.beginPath();
  ctx.ellipse(cx, 70, 30, 30, 0, 0, 2 * Math.PI);
  ctx.fill();
  ctx.fillStyle = BLUE;
  ctx.fillRect(230 - 32, 175 - 32, 64, 64);
  ctx.fillStyle = GREEN;
  ctx.beginPath();
  ctx.moveTo(80, 180 - 30);
  ctx.lineTo(80 + 30, 180 + 30);
  ctx.lineTo(80 - 30, 180 + 30);
  ctx.closePath();
  ctx.fill();
}

/** The scene as a MediaStream (canvas.captureStream()); `stop()` ends its track and the drawing. */
export function shapesScene(): { stream: MediaStream; canvas: HTMLCanvasElement; stop(): void } {
  const canvas = document.createElement('canvas');
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  const start = performance.now();
  draw(ctx, 0);
  // A timer, not requestAnimationFrame: animation frames stop in a hidden tab, and the stream would freeze.
  const timer = setInterval(() => draw(ctx, (performance.now() - start) / 1000), 100);
  const stream = canvas.captureStream(10);
  return {
    stream,
    canvas,
    stop() {
      clearInterval(timer);
      for (const t of stream.getTracks()) t.stop();
    },
  };
}
