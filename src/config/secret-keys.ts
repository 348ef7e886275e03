/**
 * Keys whose values are secrets: masked wherever configuration is printed. Apart from the schema
 * (which re-exports it) so that mask-secrets.ts, which the CLI's error handler loads at start-up,
 * does not bring zod with it.
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['secret_access_key', 'session_token', 'password', 'access_key_id', 'webhook_url']);
