/**
 * Runs async tasks one after another in the order they were asked for: a failed task does not
 * stop the ones after it (its caller gets the error). Used where each step reads what the previous
 * one wrote (an audit chain links every record to the one before).
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task);
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Waits for every task asked for so far. */
  async drain(): Promise<void> {
    await this.tail;
  }
}
