/**
 * What the operator should see of the storage guards: the circuit opening or closing, and the
 * request rate cut by throttling (or restored). One line per change, never per request.
 */
import type { Logger } from 'pino';
import type { CreateObjectStoreOptions } from '../storage/create-object-store.js';

export function storageLogHooks(logger: Logger): Pick<CreateObjectStoreOptions, 'onCircuitChange' | 'onRateChange' | 'onMultipart'> {
  return {
    onMultipart: (event) => {
      if (event.kind === 'resumed') {
        logger.info({ key: event.key, upload_id: event.uploadId, parts_reused: event.partsReused, parts_uploaded: event.partsUploaded }, 'resumed an interrupted multipart upload');
      } else {
        logger.info({ key: event.key, reason: event.reason }, 'an interrupted multipart upload could not be resumed: uploading afresh');
      }
    },
    onCircuitChange: (change) => {
      const fields = { circuit: change.to, previous: change.from, failures: change.failures };
      if (change.to === 'OPEN') logger.error(fields, 'storage circuit opened: storage calls fail at once until a trial call succeeds');
      else if (change.to === 'CLOSED') logger.info(fields, 'storage circuit closed: the trial call succeeded');
      else logger.info(fields, 'storage circuit half-open: one trial call goes out');
    },
    onRateChange: (change) => {
      const fields = { requests_per_s: change.ratePerSecond === undefined ? 'unlimited' : round(change.ratePerSecond), previous: change.previous === undefined ? 'unlimited' : round(change.previous) };
      if (change.reason === 'throttled') logger.warn(fields, 'storage asked us to slow down (SlowDown/429): request rate cut');
      else logger.info(fields, 'storage request rate restored');
    },
  };
}

function round(rate: number): number {
  return Math.round(rate * 10) / 10;
}
