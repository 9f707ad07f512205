/**
 * Runs one job's conversation at a time on a model. Until the conversation-state redesign
 * (issue 9) lands on main, calls on one loaded model must not overlap (they fail, or worse,
 * share a KV cache); with it, this goes and concurrent jobs are batched by the model itself.
 */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(f: () => Promise<T>): Promise<T> {
    const result = this.tail.then(f);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
