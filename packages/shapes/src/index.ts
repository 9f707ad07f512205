// @llava-mini/shapes: the synthetic shapes world the demo model is trained on, and its evaluation data.
export { COLOR_RGB, COLORS, demoScene, insideShape, randomScene, Rng, SHAPES, type ColorName, type Scene, type SceneOptions, type SceneShape, type ShapeKind } from './scene.js';
export { clipFrame, demoClip, DIRECTIONS, displacement, randomClip, type Clip, type ClipMove, type Direction } from './clip.js';
export { writeClipVideo } from './video.js';
export { clipQuestions, PICTURE_QUESTION_TYPES, QUESTION_TYPES, SCENE_QUESTION, sceneAnswer, type SceneShapeJson, SIDE_MARGIN, sceneQuestions, VIDEO_QUESTION_TYPES, type Question, type QuestionType } from './questions.js';
export { patchLabels, type PatchLabels } from './labels.js';
export { renderScene, sceneSvg } from './render.js';
export { readScenes, sharedPrefix, writeDataset, type DatasetOptions, type QuestionRecord, type SceneRecord } from './dataset.js';
export { datasetMedia, EVAL_SECTIONS, evalInput, evalItems, evaluate, evaluateSections, FOLLOWUP_TURNS, followupConversations, isCorrect, MAX_ANSWER_TOKENS, summarize, type Answerer, type EvalAnswer, type EvalInput, type EvalItem, type EvalModel, type EvalReport, type EvalSection, type FollowupConversation, type FollowupScore, type ModelAnswer, type SectionScore, type SectionsReport, type TypeScore } from './eval.js';
export { formatReport, formatSections } from './eval-report.js';
export { SHAPES_BPE, SHAPES_REGULAR_VOCAB, shapesCorpus, writeShapesTokenizer } from './tokenizer.js';
export { retokenize } from './dataset.js';
