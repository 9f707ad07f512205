// @llava-mini/shapes: the synthetic shapes world the demo model is trained on, and its evaluation data.
export { COLOR_RGB, COLORS, demoScene, insideShape, randomScene, Rng, SHAPES, type ColorName, type Scene, type SceneOptions, type SceneShape, type ShapeKind } from './scene.js';
export { QUESTION_TYPES, SIDE_MARGIN, sceneQuestions, type Question, type QuestionType } from './questions.js';
export { patchLabels, type PatchLabels } from './labels.js';
export { renderScene, sceneSvg } from './render.js';
export { readScenes, sharedPrefix, writeDataset, type DatasetOptions, type QuestionRecord, type SceneRecord } from './dataset.js';
export { evalItems, evaluate, formatReport, isCorrect, summarize, type Answerer, type EvalItem, type EvalReport, type ModelAnswer, type TypeScore } from './eval.js';
export { SHAPES_BPE, SHAPES_REGULAR_VOCAB, shapesCorpus, writeShapesTokenizer } from './tokenizer.js';
export { retokenize } from './dataset.js';
