/**
 * Message texts: a default per event (and the digest), each overridable in
 * `notifications.templates`. `{{name}}` is replaced by the value of `name`; an unknown name is
 * left as written, so a typo shows in the message instead of vanishing.
 */
import type { NotificationsConfig } from '../config/schema.js';

export type TemplateName = keyof NotificationsConfig['templates'];

export const DEFAULT_TEMPLATES: Record<TemplateName, { subject: string; body: string }> = {
  start: { subject: 'auditlog: archive run {{run_id}} started', body: 'Archive run {{run_id}} started on {{host}} at {{time}}.' },
  success: {
    subject: 'auditlog: archive run {{run_id}} {{outcome}}',
    body: 'Archive run {{run_id}} finished in {{duration}}: {{rows_archived}} rows archived from {{tables}} table(s), {{rows_skipped}} skipped.\n{{details}}',
  },
  failure: {
    subject: 'auditlog: archive run {{run_id}} FAILED ({{failed}} table(s))',
    body: 'Archive run {{run_id}} on {{host}} finished in {{duration}} with {{failed}} failed table(s); nothing of a failed batch was deleted.\n{{details}}',
  },
  threshold: { subject: 'auditlog: threshold exceeded in run {{run_id}}', body: 'Archive run {{run_id}} on {{host}} broke a limit:\n{{details}}' },
  digest: { subject: 'auditlog: daily digest ({{count}} event(s))', body: 'Since {{since}}:\n{{details}}' },
};

export type TemplateValues = Record<string, string | number>;

export function renderTemplate(template: string, values: TemplateValues): string {
  return template.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

export function renderMessage(name: TemplateName, overrides: NotificationsConfig['templates'], values: TemplateValues): { subject: string; text: string } {
  const template = { ...DEFAULT_TEMPLATES[name], ...overrides[name] };
  return { subject: renderTemplate(template.subject, values), text: renderTemplate(template.body, values).trimEnd() };
}
