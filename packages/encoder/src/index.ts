// @llava-mini/encoder: the CLIP vision tower graph and LLaVA-Mini's image preprocessing, platform
// neutral (image decoding with sharp is in '@llava-mini/encoder/node').
export { CLIP_MEAN, CLIP_STD, readVisionConfig, type AspectMode, type SelectFeature, type VisionConfig } from './config.js';
export { buildEncoderGraph, detectVisionPrefix, ENCODER_INPUT, ENCODER_OUTPUT, VISION_PREFIXES, type EncoderGraphOptions } from './graph.js';
export { encoderFromWeights, VisionEncoder, type VisionEncoderOptions } from './encoder.js';
export { blankImage, checkImage, DEFAULT_MAX_PIXELS, crop, expandToSquare, fromImageData, nearestIndices, nearestResize, PAD_COLOR, splitImage, type ImageDataLike, type RGB8, type TimedFrame } from './image.js';
export { paddedToSquare, resizeBicubic, resizeBicubicWindow, type RowSource } from './resample.js';
export { centerCropOffsets, clipPreprocess, normalizeInto, processFrame, processImage, shortestEdgeSize, type PixelBatch } from './preprocess.js';
export { frameIndices, roundHalfEven } from './frame-indices.js';
export { SNIFF_BYTES, sniffImageFormat, type SniffedFormat } from './sniff.js';
export { stitchFeatures, type StitchedFeatures } from './stitch.js';
