/**
 * Retention bounds and encryption requirements of compliance: pure checks over the configuration.
 * They run when the config is loaded (as schema issues with paths) and again before each table
 * is archived, so a config built in code, or edited between load and run, cannot slip past.
 * Structural input types rather than the schema's: the schema calls this, and must not be imported back.
 */
export interface PolicyClassification {
  min?: number | undefined;
  max?: number | undefined;
  require_encryption?: boolean | undefined;
}

export interface PolicyInput {
  defaults: { retention_days: number };
  compliance?:
    | {
        min_retention_days?: number | undefined;
        max_retention_days?: number | undefined;
        data_classifications?: Record<string, PolicyClassification> | undefined;
        enforce_encryption?: boolean | undefined;
      }
    | undefined;
  databases: {
    name: string;
    tables: { name: string; schema?: string | undefined; retention_days?: number | undefined; classification?: string | undefined; critical?: boolean | undefined }[];
  }[];
}

export type PolicyTable = PolicyInput['databases'][number]['tables'][number];

export interface PolicyIssue {
  path: (string | number)[];
  message: string;
}

/**
 * Every table whose effective retention lies outside a bound, or that names an unknown
 * classification; first, bounds no retention can satisfy. Those are reported where they are set,
 * and the tables they govern are not: each table's message named one bound as the fix (found by
 * probing: with min 400 and max 365, "raise its retention_days to at least 400", then "lower it to
 * at most 365").
 */
export function checkRetentionPolicy(config: PolicyInput): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const c = config.compliance;
  const globalMin = c?.min_retention_days;
  const globalMax = c?.max_retention_days;
  const globalEmpty = globalMin !== undefined && globalMax !== undefined && globalMin > globalMax;
  if (globalEmpty) {
    issues.push({
      path: ['compliance', 'min_retention_days'],
      message: `${globalMin} is above compliance.max_retention_days (${globalMax}): no retention_days can satisfy both; lower the minimum or raise the maximum`,
    });
    return issues;
  }
  const emptyClasses = new Set<string>();
  for (const [name, cls] of Object.entries(c?.data_classifications ?? {})) {
    // The tightest bound of each side, and where it is set: the classification's own wins a tie.
    const min = cls.min !== undefined && (globalMin === undefined || cls.min >= globalMin) ? { days: cls.min, from: `its min` } : globalMin === undefined ? undefined : { days: globalMin, from: 'compliance.min_retention_days' };
    const max = cls.max !== undefined && (globalMax === undefined || cls.max <= globalMax) ? { days: cls.max, from: `its max` } : globalMax === undefined ? undefined : { days: globalMax, from: 'compliance.max_retention_days' };
    if (min === undefined || max === undefined || min.days <= max.days) continue;
    emptyClasses.add(name);
    issues.push({
      path: ['compliance', 'data_classifications', name, min.from === 'its min' ? 'min' : 'max'],
      message: `classification ${name} allows no retention_days: the minimum ${min.days} (${min.from}) is above the maximum ${max.days} (${max.from}); make the bounds overlap`,
    });
  }
  config.databases.forEach((db, d) => {
    db.tables.forEach((table, t) => {
      if (table.classification !== undefined && emptyClasses.has(table.classification)) return;
      const problem = findRetentionViolation(config, table);
      if (problem === undefined) return;
      const field = problem.kind === 'unknown-classification' ? 'classification' : 'retention_days';
      issues.push({ path: ['databases', d, 'tables', t, field], message: problem.message(`${db.name}/${table.schema ?? 'public'}.${table.name}`) });
    });
  });
  return issues;
}

export interface RetentionViolation {
  kind: 'below-minimum' | 'above-maximum' | 'unknown-classification';
  retentionDays: number;
  bound?: number;
  /** One line naming the table, its retention and the bound, and the fix. */
  message(label: string): string;
}

export function effectiveRetentionDays(config: Pick<PolicyInput, 'defaults'>, table: Pick<PolicyTable, 'retention_days'>): number {
  return table.retention_days ?? config.defaults.retention_days;
}

export function findRetentionViolation(config: PolicyInput, table: PolicyTable): RetentionViolation | undefined {
  const days = effectiveRetentionDays(config, table);
  const c = config.compliance;
  const classes = c?.data_classifications ?? {};
  if (table.classification !== undefined && !Object.hasOwn(classes, table.classification)) {
    const known = Object.keys(classes);
    return {
      kind: 'unknown-classification',
      retentionDays: days,
      message: (label) =>
        `table ${label} has classification ${table.classification}, which is not in compliance.data_classifications (${known.length === 0 ? 'none defined' : `defined: ${known.join(', ')}`}): define it or fix the name`,
    };
  }
  const cls = table.classification === undefined ? undefined : classes[table.classification];
  const bounds: { min?: number | undefined; max?: number | undefined; source: string }[] = [
    { min: c?.min_retention_days, max: c?.max_retention_days, source: 'compliance' },
    ...(cls === undefined ? [] : [{ min: cls.min, max: cls.max, source: `classification ${table.classification}` }]),
  ];
  for (const b of bounds) {
    if (b.min !== undefined && days < b.min) {
      const bound = b.min;
      return {
        kind: 'below-minimum',
        retentionDays: days,
        bound,
        message: (label) => `table ${label} has retention_days ${days}, below the ${b.source} minimum of ${bound}: raise its retention_days to at least ${bound}`,
      };
    }
    if (b.max !== undefined && days > b.max) {
      const bound = b.max;
      return {
        kind: 'above-maximum',
        retentionDays: days,
        bound,
        message: (label) => `table ${label} has retention_days ${days}, above the ${b.source} maximum of ${bound}: lower its retention_days to at most ${bound}`,
      };
    }
  }
  return undefined;
}

/** True when the table may only be archived with server-side encryption. */
export function requiresEncryption(config: PolicyInput, table: PolicyTable): boolean {
  if (config.compliance?.enforce_encryption === false) return false;
  if (table.critical === true) return true;
  const cls = table.classification === undefined ? undefined : config.compliance?.data_classifications?.[table.classification];
  return cls?.require_encryption === true;
}
