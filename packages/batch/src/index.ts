// @llava-mini/batch: a JSONL of image and video questions answered on one machine (runBatch) or
// across machines on BullMQ + Redis (enqueue, startWorker, collect, queueStatus).
export { answerJob, BAD_INPUT_CODES, toJobError, type Answered, type BatchModel, type JobError, type JobTimings, type ResultLine, type Usage } from './answer.js';
export { jobKey, parseJob, readJobsFile, resolvePaths, type Job, type JobId, type JobLine, type JobsFile } from './jobs.js';
export { runBatch, type BatchOptions, type BatchSummary } from './local.js';
export { ResultLog, type OpenResultsOptions, type ResultsRecovery } from './results.js';
export { collect, enqueue, parseFailure, queueStatus, type AskSettings, type CollectOptions, type CollectSummary, type EnqueueOptions, type EnqueueSummary, type QueuedJob, type QueueStatus, type WorkerStatus } from './queue/client.js';
export { bullJobId, DEFAULT_QUEUE, type QueueAddress } from './queue/connection.js';
export { startWorker, type BatchWorker, type WorkerOptions } from './queue/worker.js';
