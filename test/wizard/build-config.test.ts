import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { renderConfigYaml, validateWizardConfig, type WizardAnswers } from '../../src/wizard/build-config.js';
import { wizardInputAt } from '../../src/wizard/run-wizard.js';

const answers = (over: Partial<WizardAnswers> = {}): WizardAnswers => ({
  database: { name: 'app', url: { value: 'postgresql://localhost/app' } },
  tables: [{ schema: 'public', name: 'audit_log', timestampColumn: 'created_at', primaryKey: ['id'], retentionDays: 90 }],
  storage: { kind: 's3', bucket: 'ab', prefix: 'archives/', region: 'us-east-1', forcePathStyle: false, sse: 'AES256' },
  ...over,
});

function errorOf(run: () => unknown): AuditlogError {
  try {
    run();
  } catch (error) {
    if (error instanceof AuditlogError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('validateWizardConfig', () => {
  const yaml = renderConfigYaml(answers(), '2026-01-01T00:00:00.000Z');

  it('names the wizard\'s configuration and the flag that was given, as a USAGE error', () => {
    const error = errorOf(() => validateWizardConfig(yaml, {}, (path) => wizardInputAt(path, { bucket: 'ab' })));
    expect(error.code).toBe('USAGE');
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe('the configuration the wizard built (from --bucket): s3.bucket: expected a string of at least 3 characters, found "ab"; fix --bucket and run the wizard again');
  });

  it('names an answer typed at a prompt, or the wizard\'s own suggestion, with the flag to pass instead', () => {
    expect(errorOf(() => validateWizardConfig(yaml, {}, (path) => wizardInputAt(path, {}), true)).message).toBe(
      'the configuration the wizard built (from your answers): s3.bucket: expected a string of at least 3 characters, found "ab"; run the wizard again with another answer, or pass --bucket',
    );
    expect(errorOf(() => validateWizardConfig(yaml, {}, (path) => wizardInputAt(path, {}))).message).toBe(
      'the configuration the wizard built (from the wizard\'s suggestion): s3.bucket: expected a string of at least 3 characters, found "ab"; pass --bucket to choose the value',
    );
  });

  it('maps each path the wizard writes to its flag', () => {
    expect(wizardInputAt('databases[0].tables[1].name', { tables: 'a,a' })).toEqual({ flag: '--tables', given: true });
    expect(wizardInputAt('databases[0].tables[0].retention_days', { retentionDays: 3 })).toEqual({ flag: '--retention-days', given: true });
    expect(wizardInputAt('databases[0].url', { databaseUrlEnv: 'X' })).toEqual({ flag: '--database-url-env', given: true });
    expect(wizardInputAt('s3.endpoint', {})).toEqual({ flag: '--endpoint', given: false });
    expect(wizardInputAt('defaults.batch_size', {})).toBeUndefined();
  });
});
