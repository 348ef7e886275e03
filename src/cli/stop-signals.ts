/**
 * SIGTERM and SIGINT as a stop request: the first one aborts the returned signal (its reason is
 * the signal's name) so no new batch starts and the work in flight finishes or rolls back; the
 * stop handlers then go, so a second signal takes the default action and ends the process at once
 * (Kubernetes' SIGKILL after the grace period, or an impatient Ctrl-C).
 *
 * SIGHUP's default action kills the process on the spot (exit 129, no summary, a lock file left),
 * and it is sent by an SSH logout as well as by operators who expect a reload. So it is never left
 * to the default while a command runs: a one-shot run treats it as a stop like SIGTERM (its
 * terminal is gone; finishing cleanly is the most it can do); a caller that passes `onHangup`
 * (the daemon, which reads its configuration again before every run, so has nothing to reload)
 * is only told, and goes on — also while it is stopping.
 */
export interface StopSignals {
  signal: AbortSignal;
  /** Removes the handlers (the command is over): a later signal takes the default action. */
  dispose: () => void;
}

export interface StopSignalOptions {
  /** SIGHUP is not a stop: called on each one, the process keeps running. */
  onHangup?: () => void;
}

export function watchStopSignals(onStop: (signal: NodeJS.Signals) => void, options: StopSignalOptions = {}): StopSignals {
  const controller = new AbortController();
  const onHangup = options.onHangup;
  const stopSignals: readonly NodeJS.Signals[] = onHangup === undefined ? ['SIGTERM', 'SIGINT', 'SIGHUP'] : ['SIGTERM', 'SIGINT'];
  const hangup = (): void => onHangup?.();
  const removeStopHandlers = (): void => {
    for (const name of stopSignals) process.off(name, handle);
  };
  const dispose = (): void => {
    removeStopHandlers();
    if (onHangup !== undefined) process.off('SIGHUP', hangup);
  };
  function handle(name: NodeJS.Signals): void {
    removeStopHandlers();
    controller.abort(name);
    onStop(name);
  }
  for (const name of stopSignals) process.on(name, handle);
  if (onHangup !== undefined) process.on('SIGHUP', hangup);
  return { signal: controller.signal, dispose };
}
