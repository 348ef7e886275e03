/**
 * SIGTERM and SIGINT as a stop request: the first one aborts the returned signal (its reason is
 * the signal's name) so no new batch starts and the work in flight finishes or rolls back; both
 * handlers then go, so a second signal takes the default action and ends the process at once
 * (Kubernetes' SIGKILL after the grace period, or an impatient Ctrl-C).
 */
export interface StopSignals {
  signal: AbortSignal;
  /** Removes the handlers (the command is over): a later signal takes the default action. */
  dispose: () => void;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function watchStopSignals(onStop: (signal: NodeJS.Signals) => void): StopSignals {
  const controller = new AbortController();
  const dispose = (): void => {
    for (const name of STOP_SIGNALS) process.off(name, handle);
  };
  function handle(name: NodeJS.Signals): void {
    dispose();
    controller.abort(name);
    onStop(name);
  }
  for (const name of STOP_SIGNALS) process.on(name, handle);
  return { signal: controller.signal, dispose };
}
