/**
 * Runs async jobs one at a time, in the order they were queued (FIFO). onnxruntime-web refuses a
 * second run while one is in flight ("Session already started"), and interleaving the runs of many
 * conversations job by job is what makes sharing one model fair: a decode step of one conversation
 * waits for at most one run of another, never for its whole answer.
 */
export class RunQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Jobs queued or running. */
  get pending(): number {
    return this.waiting;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(job);
    const settle = () => {
      this.waiting--;
    };
    this.tail = result.then(settle, settle);
    return result;
  }
}
