/**
 * Logs go to stderr (stdout is for results): JSON lines when not on a TTY or with --json,
 * readable lines on a TTY. Every line carries the run id.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { Writable } from 'node:stream';

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
  // "\r, erase line" first: a log line replaces the live progress line (progress-reporter.ts), which
  // is redrawn below it at the next batch, instead of being glued to its end.
  const clearingFirst = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      destination.write('\r\x1b[2K');
      destination.write(chunk, callback);
    },
  });
  return pino(
    { level: options.level, base },
    pretty({ destination: clearingFirst, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname,run_id' }),
  );
}
