// Platform-neutral entry of @llava-mini/pipeline: the model class over stages composed by hand, formats,
// manifest types and frame sampling. Node loading, the converter and ffmpeg are in './node'.
export { LlavaMini } from './llava-mini.js';
export type { InputResolver, ModelParts, Pictures, ResolveInputOptions } from './model-parts.js';
export { Conversation, DEFAULT_VIDEO_STATE_BYTES, type AskOptions, type ChatOptions } from './conversation.js';
export { DEFAULT_LIVE_BYTES, DEFAULT_LIVE_WINDOW_SECONDS, LiveStream, type LiveAskResult, type LiveFrameEvent, type LiveOptions, type LiveStats, type LiveWindow } from './live.js';
export type { AskChoice, AskResult, AskTimings, StageTimings } from './ask-result.js';
export { Answer } from './answer.js';
export {
  Completions,
  mediaInput,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionTokenLogprob,
  type ChoiceLogprobs,
  type CompletionRequestOptions,
  type CompletionUsage,
} from './completions.js';
export {
  parseChatRequest,
  RequestError,
  type ChatCompletionCreateParams,
  type ChatCompletionMessage,
  type ContentPart,
  type MediaRef,
  type ParsedRequest,
} from './completions-request.js';
export { VisionPipeline, type EncodedPictures, type FrameStream, type LookedAtImages, type PictureTimings } from './vision.js';
export { DEFAULT_PICTURE_CACHE_BYTES, PictureCache, pictureKey, type PictureCacheStats } from './picture-cache.js';
export { checkDtype, checkTarget, DTYPE_NAMES, STAGES, stageDtypes, TARGETS, weightFormat, type DtypeName, type StageName, type Target } from './formats.js';
export { GRAPH_FILES, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, parseManifest, type FileEntry, type Manifest, type StageEntry } from './manifest.js';
export { frameIndices, roundHalfEven, type TimedFrame } from '@llava-mini/encoder';
