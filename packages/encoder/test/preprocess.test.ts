import { ImageError, InvalidOptionError } from '@llava-mini/core';
import { describe, expect, it } from 'vitest';
import {
  centerCropOffsets,
  clipPreprocess,
  expandToSquare,
  fromImageData,
  nearestIndices,
  nearestResize,
  PAD_COLOR,
  processFrame,
  processImage,
  type RGB8,
  resizeBicubic,
  resizeBicubicWindow,
  shortestEdgeSize,
  splitImage,
  stitchFeatures,
} from '../src/index.js';

/** An image whose pixel (x, y) is f(x, y). */
function image(width: number, height: number, f: (x: number, y: number) => readonly number[]): RGB8 {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  return { width, height, data };
}
const solid = (w: number, h: number, rgb: readonly number[]) => image(w, h, () => rgb);
const px = (img: RGB8, x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
/** Channel c of pixel (x, y) of a [3, S, S] plane set starting at `offset`. */
const at = (t: Float32Array, S: number, c: number, x: number, y: number, offset = 0) => t[offset + c * S * S + y * S + x];

// (v / 255 - mean) / std, from the CLIP constants, by hand (Python float64).
const WHITE = [1.930336254158794, 2.0748838377332515, 2.1458969890575763];
const BLACK = [-1.79226253374815, -1.7520971281645974, -1.4802197687835659];
const ORANGE = [1.127422790100434, -0.251320278792892, -0.7692164829323617]; // (200, 100, 50)
const PAD = [-0.011254486200513725, -0.011195982893419113, -0.0013329342130609264]; // (122, 116, 104)

const SQUARE = { imageSize: 8, imageAspectRatio: 'square', resolutionRatio: 1 } as const;
const PAD8 = { ...SQUARE, imageAspectRatio: 'pad' } as const;

/** Every pixel of every plane equals `want[c]` (to float32 precision). */
function expectSolid(t: Float32Array, S: number, want: number[], offset = 0): void {
  for (let c = 0; c < 3; c++) for (let i = 0; i < S * S; i++) expect(t[offset + c * S * S + i]).toBeCloseTo(want[c], 6);
}

describe('CLIP normalisation', () => {
  it('solid colours of any size and aspect give exact normalised values in both modes', () => {
    for (const [rgb, want] of [
      [[255, 255, 255], WHITE],
      [[0, 0, 0], BLACK],
      [[200, 100, 50], ORANGE],
    ] as const) {
      for (const [w, h] of [[8, 8], [30, 17], [5, 11], [100, 3]]) {
        expectSolid(processImage(solid(w, h, rgb), SQUARE).data, 8, [...want]);
      }
      expectSolid(processImage(solid(8, 8, rgb), PAD8).data, 8, [...want]);
    }
  });

  it("is bit-exact with transformers' numpy arithmetic (float64 rescale, float32 normalise)", () => {
    // numpy 1.24: ((np.uint8(v).astype(np.float64) * (1/255)).astype(np.float32) - mean32) / std32,
    // mean32/std32 = np.array(CLIP_MEAN/CLIP_STD, dtype=np.float32); printed as float(). Checked once by hand.
    const NUMPY: Record<number, number[]> = {
      0: [-1.7922625541687012, -1.7520971298217773, -1.480219841003418],
      1: [-1.777664065361023, -1.7370892763137817, -1.465999722480774],
      77: [-0.6681836247444153, -0.5964989066123962, -0.38527464866638184],
      128: [0.07633614540100098, 0.16889731585979462, 0.33994877338409424],
      254: [1.9157377481460571, 2.059875965118408, 2.1316771507263184],
      255: [1.9303361177444458, 2.0748836994171143, 2.1458969116210938],
    };
    for (const [v, want] of Object.entries(NUMPY)) {
      const t = clipPreprocess(solid(2, 2, [+v, +v, +v]), 2);
      expect([t[0], t[4], t[8]]).toEqual(want);
    }
  });

  it("LLaVA's pad colour is int(mean * 255) and normalises to just below zero", () => {
    expect([...PAD_COLOR]).toEqual([122, 116, 104]);
    const t = clipPreprocess(solid(3, 3, PAD_COLOR), 8);
    expectSolid(t, 8, PAD);
  });

  it('output is channels-first [3, S, S] with rows and columns in place', () => {
    // Column x has red 20x, row y green 30y: an 8x8 image needs no resize or crop.
    const t = clipPreprocess(image(8, 8, (x, y) => [20 * x, 30 * y, 7]), 8);
    expect(t.length).toBe(3 * 64);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        expect(at(t, 8, 0, x, y)).toBeCloseTo((20 * x) / 255 / 0.26862954 - 0.48145466 / 0.26862954, 5);
        expect(at(t, 8, 1, x, y)).toBeCloseTo((30 * y) / 255 / 0.26130258 - 0.4578275 / 0.26130258, 5);
      }
    }
  });
});

describe('square mode: shortest edge then centre crop', () => {
  it('long side is int(S * long / short), truncated', () => {
    expect(shortestEdgeSize(640, 480, 336)).toEqual([448, 336]);
    expect(shortestEdgeSize(480, 640, 336)).toEqual([336, 448]);
    expect(shortestEdgeSize(1000, 333, 336)).toEqual([1009, 336]); // 1009.009...
    expect(shortestEdgeSize(333, 1000, 336)).toEqual([336, 1009]);
    expect(shortestEdgeSize(500, 500, 336)).toEqual([336, 336]);
    expect(centerCropOffsets(448, 336, 336)).toEqual({ left: 56, top: 0 });
    expect(centerCropOffsets(337, 341, 336)).toEqual({ left: 0, top: 2 });
  });

  it('a wide image keeps its middle columns: (w - S) // 2 from the left', () => {
    // 13 x 8, S = 8: no resize (short side already 8), crop left = (13 - 8) // 2 = 2, so columns 2..9 survive.
    const img = image(13, 8, (x) => [x * 19, 0, 0]);
    const t = processImage(img, SQUARE).data;
    for (let x = 0; x < 8; x++) for (let y = 0; y < 8; y++) expect(at(t, 8, 0, x, y)).toBeCloseTo(((x + 2) * 19) / 255 / 0.26862954 - 0.48145466 / 0.26862954, 5);
  });

  it('a tall image keeps its middle rows: (h - S) // 2 from the top', () => {
    const img = image(8, 11, (_, y) => [0, y * 23, 0]);
    const t = processImage(img, SQUARE).data;
    for (let y = 0; y < 8; y++) expect(at(t, 8, 1, 3, y)).toBeCloseTo(((y + 1) * 23) / 255 / 0.26130258 - 0.4578275 / 0.26130258, 5);
  });

  it('only the cropped window is resampled, with the values of the full resize', () => {
    const img = image(23, 9, (x, y) => [(x * 37 + y * 11) % 256, (x * x * 5) % 256, (x ^ y) * 9]);
    const full = resizeBicubic(img, 20, 8); // shortest edge 9 -> 8: int(8 * 23 / 9) = 20
    const window = resizeBicubicWindow(img, 20, 8, 6, 0, 8, 8);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(px(window, x, y)).toEqual(px(full, x + 6, y));
  });
});

describe('pad mode: expand2square', () => {
  it('a wide image is pasted at (0, (w - h) // 2) on a pad-coloured square', () => {
    // 12 x 9: one pad row on top ((12 - 9) // 2 = 1), two at the bottom.
    const sq = expandToSquare(solid(12, 9, [255, 255, 255]));
    expect([sq.width, sq.height]).toEqual([12, 12]);
    const rows = Array.from({ length: 12 }, (_, y) => px(sq, 5, y)[0]);
    expect(rows).toEqual([122, 255, 255, 255, 255, 255, 255, 255, 255, 255, 122, 122]);
  });

  it('a tall image is pasted at ((h - w) // 2, 0)', () => {
    const sq = expandToSquare(solid(5, 8, [0, 0, 0]));
    expect([sq.width, sq.height]).toEqual([8, 8]);
    const cols = Array.from({ length: 8 }, (_, x) => px(sq, x, 7));
    expect(cols).toEqual([[122, 116, 104], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [122, 116, 104], [122, 116, 104]]);
  });

  it('a square image is left alone', () => {
    const img = solid(4, 4, [1, 2, 3]);
    expect(expandToSquare(img)).toBe(img);
  });

  it('processImage pads instead of cropping: the padding lands in the normalised output', () => {
    // 8 x 4 white, S = 8: pad rows 0, 1 and 6, 7; no resize.
    const t = processImage(solid(8, 4, [255, 255, 255]), PAD8).data;
    for (let y = 0; y < 8; y++) {
      const want = y >= 2 && y < 6 ? WHITE : PAD;
      for (let c = 0; c < 3; c++) expect(at(t, 8, c, 4, y)).toBeCloseTo(want[c], 6);
    }
    // The same image in square mode is upscaled to 16 x 8 and cropped: all white.
    expectSolid(processImage(solid(8, 4, [255, 255, 255]), SQUARE).data, 8, WHITE);
  });
});

describe('pad mode without the square canvas', () => {
  const stripes = (w: number, h: number) => image(w, h, (x, y) => [(x * 41) % 256, (y * 67) % 256, ((x + y) * 13) % 256]);

  it.each([
    [12, 9, 8],
    [9, 12, 8],
    [31, 7, 8],
    [7, 30, 8],
    [300, 20, 14],
    [5, 3, 14],
  ])('%i x %i at S = %i equals resizing the materialised expand2square canvas', (w, h, S) => {
    const img = stripes(w, h);
    const config = { imageSize: S, imageAspectRatio: 'pad', resolutionRatio: 1 } as const;
    expect(processImage(img, config).data).toEqual(clipPreprocess(expandToSquare(img), S));
  });

  it('a 40000 x 30 panorama works (its padded canvas would be 4.8 GB): pad colour with the image in a thin middle band', () => {
    const t = processImage(solid(40000, 30, [255, 255, 255]), { imageSize: 14, imageAspectRatio: 'pad', resolutionRatio: 1 }).data;
    // Rows 19985..20014 are image; output row 6 (centre 18571, support +-5714) sees them, rows 0 and 13 only padding.
    for (const y of [0, 13]) for (let c = 0; c < 3; c++) expect(at(t, 14, c, 7, y)).toBeCloseTo(PAD[c], 6);
    expect(at(t, 14, 0, 7, 6)).toBeGreaterThan(PAD[0]);
  });
});

describe('Pillow BICUBIC parity', () => {
  // Golden bytes from Pillow 9.4.0 (Debian python3-pil), produced once by hand with
  //   Image.new('RGB', (w, h)) filled by the same formula as `gradient` below, then
  //   .resize((ow, oh), Image.BICUBIC).tobytes().hex()
  // (a one-off comparison over 73 random sizes up to 300 -> 400, windows included, matched byte for byte).
  const gradient = (w: number, h: number) => image(w, h, (x, y) => [(x * 37 + y * 11) % 256, (x * x * 5 + y * 23) % 256, ((x ^ y) * 29 + ((x * y) % 7) * 40) % 256]);
  const GOLDEN: [number, number, number, number, string][] = [
    [7, 5, 3, 2, '24173f78426fcfa3773e4b72947a72c4b26d'],
    [
      7, 5, 10, 7,
      '00000010010d2d07224712336122467b375f955179af708fcc99a2dfb6af040b0e160d0f33132d4d1e74672e9581437c9b5d42b57c53d2a58ee5c2c40c1e231f20313c26605631af7041a28a567ca47053be8f32dbb863eed5a4142e332730754436b15e41a478512c926647ac80d6c69f66e3c836f6e53c1c3e482f40934c46a46651268061209a765cb490b1cdaecbf4e17affff1d2551643853725559746f645c89746aa38972bda372dfca85bfb67b8f90672b5d7a3e5f425b654b7570de8f80bca9957dc3af48f0e1017b78530000c5',
    ],
    [7, 5, 4, 9, '0e000a4c1434904b74ce9ba512070f501c57945369d2a39a19151b572a949b6155d9b1821f22435d3795a16e65dfbe5f252f71634478a77b80e5cb452b3c8069514bac8790f5e16431497d6f5e40b4968de6da7f385763766c88c2ab64928d6e3c5f547a74b2c9b64d636263'],
    [13, 6, 5, 3, '2612388b4b6c9697973d7471a29b603c3f70a17c72a39b6f537c88b87b7a516b6bb6a873657972688294cd758c'],
  ];
  it.each(GOLDEN)('%i x %i -> %i x %i matches Pillow byte for byte', (w, h, ow, oh, hex) => {
    const out = resizeBicubic(gradient(w, h), ow, oh);
    expect(Buffer.from(out.data).toString('hex')).toBe(hex);
  });

  it('same-size resize is a copy', () => {
    const img = gradient(6, 4);
    expect(resizeBicubic(img, 6, 4).data).toEqual(img.data);
  });
});

describe('splitImage', () => {
  const coords = image(7, 5, (x, y) => [x, y, 0]);
  it('N = 1 is the image itself', () => {
    expect(splitImage(coords, 1)).toEqual([coords]);
  });
  it('N = 2: four (W // 2) x (H // 2) crops row-major, remainder dropped, full image last', () => {
    const pieces = splitImage(coords, 2);
    expect(pieces).toHaveLength(5);
    const origins = pieces.slice(0, 4).map((p) => [p.width, p.height, ...px(p, 0, 0).slice(0, 2), ...px(p, p.width - 1, p.height - 1).slice(0, 2)]);
    expect(origins).toEqual([
      [3, 2, 0, 0, 2, 1],
      [3, 2, 3, 0, 5, 1],
      [3, 2, 0, 2, 2, 3],
      [3, 2, 3, 2, 5, 3],
    ]);
    expect(pieces[4]).toBe(coords);
  });
  it('an image smaller than N x N is an ImageError', () => {
    expect(() => splitImage(solid(1, 5, [0, 0, 0]), 2)).toThrow(ImageError);
  });
  it('processImage with N = 2 gives N*N + 1 pieces, the last one the unsplit image', () => {
    const img = image(20, 12, (x, y) => [x * 10, y * 20, 99]);
    const hd = processImage(img, { ...PAD8, resolutionRatio: 2 });
    const sd = processImage(img, PAD8);
    expect(hd.pieces).toBe(5);
    expect(hd.data.length).toBe(5 * 3 * 64);
    expect(hd.data.subarray(4 * 192)).toEqual(sd.data);
  });
});

describe('video frames: nearest squash', () => {
  it('indices are min(floor(dst * float32(in / out)), in - 1)', () => {
    expect([...nearestIndices(5, 3)]).toEqual([0, 1, 3]);
    expect([...nearestIndices(3, 7)]).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect([...nearestIndices(4, 8)]).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([...nearestIndices(6, 6)]).toEqual([0, 1, 2, 3, 4, 5]);
    // float32 scale: 2/82 rounds down, so dst 41 maps to 0 where exact arithmetic would give 1.
    expect(nearestIndices(2, 82)[41]).toBe(0);
  });

  it('nearestResize picks those pixels and squashes the aspect ratio', () => {
    const img = image(10, 6, (x, y) => [x, y, x + y]);
    const out = nearestResize(img, 4, 4);
    // x: scale 2.5 -> 0, 2, 5, 7; y: scale 1.5 -> 0, 1, 3, 4.
    expect([0, 1, 2, 3].map((i) => px(out, i, 0)[0])).toEqual([0, 2, 5, 7]);
    expect([0, 1, 2, 3].map((i) => px(out, 0, i)[1])).toEqual([0, 1, 3, 4]);
  });

  it('processFrame = nearest squash to S x S, then normalise (no pad, no crop)', () => {
    const frame = image(10, 6, (x, y) => [x * 25, y * 40, 0]);
    const { data, pieces } = processFrame(frame, { imageSize: 4, resolutionRatio: 1 });
    expect(pieces).toBe(1);
    const xs = [0, 2, 5, 7];
    const ys = [0, 1, 3, 4];
    for (let i = 0; i < 4; i++) {
      expect(at(data, 4, 0, i, 0)).toBeCloseTo((xs[i] * 25) / 255 / 0.26862954 - 0.48145466 / 0.26862954, 5);
      expect(at(data, 4, 1, 0, i)).toBeCloseTo((ys[i] * 40) / 255 / 0.26130258 - 0.4578275 / 0.26130258, 5);
    }
    const hd = processFrame(frame, { imageSize: 4, resolutionRatio: 2 });
    expect(hd.pieces).toBe(5);
    expect(hd.data.subarray(4 * 48)).toEqual(data);
  });
});

describe('fromImageData (browser canvas pixels)', () => {
  it('drops alpha without compositing, like PIL convert("RGB")', () => {
    const rgba = Uint8ClampedArray.from([10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255]);
    expect(fromImageData({ width: 3, height: 1, data: rgba })).toEqual({ width: 3, height: 1, data: Uint8Array.from([10, 20, 30, 40, 50, 60, 70, 80, 90]) });
  });
  it('refuses a buffer of the wrong size', () => {
    expect(() => fromImageData({ width: 2, height: 2, data: new Uint8ClampedArray(12) })).toThrow(InvalidOptionError);
  });
});

describe('stitchFeatures (HD, spec §5 step 2)', () => {
  it('piece i*N + j fills grid rows i*g.. and columns j*g..; the last piece is the global one', () => {
    // N = 2, g = 2, D = 1: token t of piece k holds 10k + t.
    const f = Float32Array.from({ length: 5 * 4 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
    const { grid, global, side, dim } = stitchFeatures(f, 2, 2);
    expect([side, dim]).toEqual([4, 1]);
    expect([...grid]).toEqual([0, 1, 10, 11, 2, 3, 12, 13, 20, 21, 30, 31, 22, 23, 32, 33]);
    expect([...global]).toEqual([40, 41, 42, 43]);
  });
  it('keeps the feature vectors whole (D > 1)', () => {
    const D = 3;
    const f = Float32Array.from({ length: 5 * 4 * D }, (_, i) => i);
    const { grid } = stitchFeatures(f, 2, 2);
    // Grid row 0, column 2 is piece 1, token 0.
    expect([...grid.subarray(2 * D, 3 * D)]).toEqual([12, 13, 14]);
  });
  it('refuses features of the wrong length', () => {
    expect(() => stitchFeatures(new Float32Array(7), 2, 2)).toThrow(InvalidOptionError);
  });
});
