import type { Queryable } from '../store/db.js';
import type { DeviceEntry, HotStore } from '../store/hot/hot-store.js';

/**
 * Records that `sub` uses device `fph`: at token issuance (a login), on confirmation by a second
 * factor, or with a reputation from fraud protection. Requests alone never register a device, so
 * an attacker's device does not become "known" by being used.
 */
export async function recordDevice(
  db: Queryable,
  hot: HotStore,
  d: { sub: string; fph: string; confirmed?: boolean; reputation?: 'good' | 'bad' | null },
): Promise<DeviceEntry> {
  const [row] = await db.query<{ confirmed: boolean; reputation: DeviceEntry['reputation'] }>(
    `INSERT INTO devices (sub, fph, confirmed_at, reputation) VALUES ($1, $2, CASE WHEN $3 THEN now() END, $4)
     ON CONFLICT (sub, fph) DO UPDATE SET last_seen = now(),
       confirmed_at = CASE WHEN $3 THEN coalesce(devices.confirmed_at, now()) ELSE devices.confirmed_at END,
       reputation = coalesce($4, devices.reputation)
     RETURNING confirmed_at IS NOT NULL AS confirmed, reputation`,
    [d.sub, d.fph, d.confirmed === true, d.reputation ?? null],
  );
  const entry: DeviceEntry = { sub: d.sub, fph: d.fph, confirmed: row!.confirmed, reputation: row!.reputation };
  await hot.putDevices([entry]);
  return entry;
}
