/**
 * Logs go to stderr (stdout is for results): JSON lines when not on a TTY or with --json,
 * readable lines on a TTY. Every line carries the run id.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  runId: string;
  json: boolean;
  level: 'debug' | 'info' | 'warn';
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.stream ?? process.stderr;
  const base = { run_id: options.runId };
  const isTty = (destination as { isTTY?: boolean }).isTTY === true;
  if (options.json || !isTty) {
    return pino({ level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
  }
  return pino(
    { level: options.level, base },
    pretty({ destination, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname,run_id' }),
  );
}
