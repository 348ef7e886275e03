/**
 * The wizard's answers as a configuration file, checked by the same parser as `config validate`.
 * Pure. A secret that came from the environment is written as its `${VAR}` placeholder, never as
 * its value, so the file can be committed and the secret stays in the secret store.
 */
import { stringify } from 'yaml';
import type { Env } from '../config/expand-env.js';
import { parseConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';

/** A value as it will be written: literally, or as a placeholder for an environment variable. */
export type WrittenValue = { value: string } | { env: string };

export interface WizardTable {
  schema: string;
  name: string;
  timestampColumn: string;
  primaryKey: string[];
  retentionDays: number;
}

export type WizardStorage =
  | {
      kind: 's3';
      bucket: string;
      prefix: string;
      region: string;
      endpoint?: string;
      forcePathStyle: boolean;
      sse: 'none' | 'AES256' | 'aws:kms';
      sseKmsKeyId?: string;
      storageClass?: string;
      credentials?: { accessKeyId: WrittenValue; secretAccessKey: WrittenValue };
    }
  | { kind: 'local'; path: string };

export interface WizardAnswers {
  database: { name: string; url: WrittenValue };
  tables: WizardTable[];
  storage: WizardStorage;
  compliance?: { min_retention_days?: number; max_retention_days?: number };
}

const written = (v: WrittenValue): string => ('env' in v ? `\${${v.env}}` : v.value);

/** The most common retention becomes `defaults.retention_days`; tables that differ override it. */
export function buildConfigDocument(answers: WizardAnswers): Record<string, unknown> {
  const counts = new Map<number, number>();
  for (const t of answers.tables) counts.set(t.retentionDays, (counts.get(t.retentionDays) ?? 0) + 1);
  const retention = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? 90;
  const s = answers.storage;
  const storage =
    s.kind === 'local'
      ? { local: { path: s.path } }
      : {
          s3: {
            bucket: s.bucket,
            ...(s.prefix === '' ? {} : { prefix: s.prefix }),
            region: s.region,
            ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
            ...(s.forcePathStyle ? { force_path_style: true } : {}),
            ...(s.credentials === undefined ? {} : { access_key_id: written(s.credentials.accessKeyId), secret_access_key: written(s.credentials.secretAccessKey) }),
            ...(s.storageClass === undefined || s.storageClass === 'STANDARD' ? {} : { storage_class: s.storageClass }),
            ...(s.sse === 'none' ? {} : { sse: s.sse }),
            ...(s.sseKmsKeyId === undefined ? {} : { sse_kms_key_id: s.sseKmsKeyId }),
          },
        };
  return {
    ...storage,
    defaults: { retention_days: retention },
    ...(answers.compliance === undefined ? {} : { compliance: answers.compliance }),
    databases: [
      {
        name: answers.database.name,
        url: written(answers.database.url),
        tables: answers.tables.map((t) => ({
          name: t.name,
          ...(t.schema === 'public' ? {} : { schema: t.schema }),
          timestamp_column: t.timestampColumn,
          primary_key: t.primaryKey.length === 1 ? t.primaryKey[0] : t.primaryKey,
          ...(t.retentionDays === retention ? {} : { retention_days: t.retentionDays }),
        })),
      },
    ],
  };
}

export function renderConfigYaml(answers: WizardAnswers, generatedAt: string): string {
  const header = [
    `# Written by \`auditlog wizard\` on ${generatedAt}. Every key: docs/configuration.md.`,
    '# ${VAR} placeholders are read from the environment when the file is loaded.',
    '# Check it with `auditlog config validate -c FILE --check-connections`, then `auditlog archive -c FILE --dry-run`.',
  ].join('\n');
  return `${header}\n${stringify(buildConfigDocument(answers), { lineWidth: 0 })}`;
}

/** What produced the value at a path of the built configuration, for messages: the flag and whether it was given. */
export type WizardInputAt = (path: string) => { flag: string; given: boolean } | undefined;

/** The name of the configuration in messages: it is no file yet (and `-` would read as one). */
export const WIZARD_CONFIG_LABEL = 'the configuration the wizard built';

/**
 * Checks `text` with the parser of `config validate`. Each problem of the schema is one line
 * naming the wizard's configuration and, through `inputAt`, the flag (or answer) that produced the
 * value and how to fix it: a USAGE error, since the input was the flags and answers, not a file.
 */
export function validateWizardConfig(text: string, env: Env, inputAt: WizardInputAt = () => undefined, interactive = false): Config {
  try {
    return parseConfig(text, WIZARD_CONFIG_LABEL, env);
  } catch (error) {
    if (!(error instanceof AuditlogError) || error.code !== 'CONFIG_INVALID') throw error;
    const issues = Array.isArray(error.details.issues) ? error.details.issues : [error.message];
    const paths = Array.isArray(error.details.paths) ? error.details.paths : [];
    const lines = issues.map((issue, i) => {
      const input = inputAt(paths[i] ?? '');
      if (input === undefined) return `${WIZARD_CONFIG_LABEL}: ${issue}`;
      if (input.given) return `${WIZARD_CONFIG_LABEL} (from ${input.flag}): ${issue}; fix ${input.flag} and run the wizard again`;
      if (interactive) return `${WIZARD_CONFIG_LABEL} (from your answers): ${issue}; run the wizard again with another answer, or pass ${input.flag}`;
      return `${WIZARD_CONFIG_LABEL} (from the wizard's suggestion): ${issue}; pass ${input.flag} to choose the value`;
    });
    throw new AuditlogError('USAGE', lines.join('\n'), { details: { ...error.details, issues: lines }, cause: error });
  }
}

/**
 * The environment variable holding exactly `value`, if any (preferred names first): a URL typed as
 * `--database-url "$DATABASE_URL"` is then still written as `${DATABASE_URL}`.
 */
export function findEnvVariable(value: string, env: Env, preferred: readonly string[] = []): string | undefined {
  if (value === '') return undefined;
  const names = [...preferred, ...Object.keys(env).sort()];
  return names.find((name) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && env[name] === value);
}
