import type { JsonWebKey } from 'node:crypto';

/**
 * The hot copy of everything the guard reads on the request path, and the feed of changes to
 * it. Postgres stays the source of truth; the CLI writes here after committing there, and every
 * guard instance replicates this into memory (snapshot, then changes) so a request never waits
 * on the network.
 *
 * Two implementations: Redis (a Redis Stream carries the changes and wakes guards) and tables
 * in the state database (the embedded default, and Postgres without Redis; NOTIFY wakes guards
 * on Postgres, polling elsewhere).
 */

export type KeyAlg = 'HS256' | 'RS256' | 'ES256' | 'EdDSA';
export type KeyState = 'staged' | 'active' | 'retiring' | 'disabled' | 'destroyed';

/** A key as verifiers see it. Symmetric secrets stay sealed under the KEK even here. */
export interface PublishedKey {
  kid: string;
  alg: KeyAlg;
  state: KeyState;
  /** Answers for tokens whose header carries no kid (legacy issuers). */
  kidless: boolean;
  /** Epoch ms after which a retiring key stops verifying; null while not retiring. */
  verifyUntil: number | null;
  compromised: boolean;
  compromisedAt: number | null;
  activatedAt: number | null;
  publicJwk?: JsonWebKey;
  sealedSecret?: string;
}

export interface HotPolicy {
  version: number;
  doc: Record<string, unknown>;
}

export type WatermarkScope = 'user' | 'kid';

export type HotChange =
  | { t: 'keys'; keys: PublishedKey[] }
  | { t: 'policy'; policy: HotPolicy }
  /** Watermarks in epoch seconds; null removes the subject's watermark. */
  | { t: 'wm'; scope: WatermarkScope; entries: Array<[string, number | null]> };

export interface HotSnapshot {
  /** Position in the change feed at (or before) the moment the snapshot was read. */
  cursor: string;
  keys: PublishedKey[];
  policy: HotPolicy | null;
  watermarks: Record<WatermarkScope, Map<string, number>>;
}

export interface HotStore {
  readonly kind: 'redis' | 'tables';
  publishKeys(keys: PublishedKey[]): Promise<void>;
  publishPolicy(policy: HotPolicy): Promise<void>;
  putWatermarks(scope: WatermarkScope, entries: Array<[string, number | null]>): Promise<void>;
  snapshot(): Promise<HotSnapshot>;
  /** Changes after `cursor`, oldest first; 'gap' when the feed no longer reaches back that far. */
  changesSince(cursor: string, limit?: number): Promise<{ cursor: string; changes: HotChange[] } | 'gap'>;
  /**
   * Calls `onWake` soon after any change is written by any process, where the backend can push.
   * Returns a stop function, or undefined when only polling is possible.
   */
  watch(onWake: () => void): Promise<(() => Promise<void>) | undefined>;
  close(): Promise<void>;
}

/** Big watermark or revocation changes are split so no single feed entry gets huge. */
export const CHANGE_CHUNK = 5000;

export function chunk<T>(items: T[], size = CHANGE_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The standard public JWKS (RFC 7517) derived from a keyset: what outside verifiers fetch. */
export function jwksOf(keys: PublishedKey[]): { keys: JsonWebKey[] } {
  return {
    keys: keys
      .filter((k) => k.publicJwk && (k.state === 'staged' || k.state === 'active' || k.state === 'retiring'))
      .map((k) => ({ ...k.publicJwk!, kid: k.kid, alg: k.alg, use: 'sig' })),
  };
}
