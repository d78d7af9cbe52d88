import type { Queryable } from '../store/db.js';
import { WATERMARK_SCOPES, type DeviceEntry, type HotStore, type RevocationKind } from '../store/hot/hot-store.js';
import { syncKeysToHotStore } from './keys.js';
import { syncLedgerToHotStore } from './ledger.js';
import { currentPolicy } from './policy.js';

export interface ResyncSummary {
  keys: number;
  policyVersion: number;
  watermarks: number;
  revocations: number;
  devices: number;
  ledgerSessions: number;
}

/**
 * Rebuilds the hot copy from the source of truth: after Redis restarted empty, or was replaced.
 * Every write is idempotent, and guards receive it as ordinary changes.
 */
export async function resyncHotStore(db: Queryable, hot: HotStore): Promise<ResyncSummary> {
  const keys = await syncKeysToHotStore(db, hot);
  const policy = await currentPolicy(db);
  if (policy.version > 0) await hot.publishPolicy({ version: policy.version, doc: policy.doc as unknown as Record<string, unknown> });
  let watermarks = 0;
  for (const scope of WATERMARK_SCOPES) {
    const rows = await db.query<{ subject: string; nb: number }>(
      `SELECT subject, floor(extract(epoch FROM max(not_before)))::bigint AS nb FROM watermarks WHERE scope = $1 AND cleared_at IS NULL GROUP BY subject`,
      [scope],
    );
    await hot.putWatermarks(scope, rows.map((r) => [r.subject, Number(r.nb)]));
    watermarks += rows.length;
  }
  let revocations = 0;
  for (const kind of ['jti', 'sid', 'fph'] as RevocationKind[]) {
    const rows = await db.query<{ value: string; until: number }>(
      `SELECT value, ceil(extract(epoch FROM max(expires_at)))::bigint AS until FROM revocations WHERE kind = $1 AND expires_at > now() AND lifted_at IS NULL GROUP BY value`,
      [kind],
    );
    await hot.putRevocations(kind, rows.map((r) => [r.value, Number(r.until)]));
    revocations += rows.length;
  }
  const devices = await db.query<DeviceEntry>(`SELECT sub, fph, confirmed_at IS NOT NULL AS confirmed, reputation FROM devices`);
  await hot.putDevices(devices);
  let ledgerSessions = 0;
  for (const k of keys.filter((key) => key.compromised)) ledgerSessions += await syncLedgerToHotStore(db, hot, k.kid);
  return { keys: keys.length, policyVersion: policy.version, watermarks, revocations, devices: devices.length, ledgerSessions };
}
