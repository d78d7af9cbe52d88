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
  /** Epoch ms when it stopped signing (became retiring); null while it may sign. */
  retiredAt: number | null;
  publicJwk?: JsonWebKey;
  sealedSecret?: string;
}

export interface HotPolicy {
  version: number;
  doc: Record<string, unknown>;
}

/** user: one subject; kid: every token of a key; cohort: "<n>" for every key, "<kid>#<n>" for one. */
export type WatermarkScope = 'user' | 'kid' | 'cohort';
export const WATERMARK_SCOPES: readonly WatermarkScope[] = ['user', 'kid', 'cohort'];
export type RevocationKind = 'jti' | 'sid' | 'fph';
export const REVOCATION_KINDS: readonly RevocationKind[] = ['jti', 'sid', 'fph'];

/** A device a user has used: recorded when a token is issued for it, confirmed after a second factor. */
export interface DeviceEntry {
  sub: string;
  fph: string;
  confirmed: boolean;
  reputation: 'good' | 'bad' | null;
}

export type HotChange =
  | { t: 'keys'; keys: PublishedKey[] }
  | { t: 'policy'; policy: HotPolicy }
  /** Watermarks in epoch seconds; null removes the subject's watermark. */
  | { t: 'wm'; scope: WatermarkScope; entries: Array<[string, number | null]> }
  /** Revoked values with the epoch second their entry expires; null removes it. */
  | { t: 'rev'; kind: RevocationKind; entries: Array<[string, number | null]> }
  | { t: 'dev'; entries: DeviceEntry[] }
  /** The sessions and users a compromised key really signed for (the forgery check's reference). */
  | { t: 'ledger'; kid: string; sids: string[]; subs: string[] };

export interface HotSnapshot {
  /** Position in the change feed at (or before) the moment the snapshot was read. */
  cursor: string;
  keys: PublishedKey[];
  policy: HotPolicy | null;
  watermarks: Record<WatermarkScope, Map<string, number>>;
  revocations: Record<RevocationKind, Map<string, number>>;
  devices: DeviceEntry[];
  ledger: Map<string, { sids: Set<string>; subs: Set<string> }>;
}

/** Decisions counted per minute by kid, decision, reason and cohort, summed across guard instances. */
export interface CounterRow {
  /** Epoch minute (floor(ms / 60000)). */
  minute: number;
  kid: string;
  decision: string;
  reason: string;
  cohort: number;
  n: number;
}

/** Decision counters and gate marks are kept two days: long enough for any health gate or post-incident look. */
export const COUNTS_KEPT_S = 2 * 24 * 3600;

/**
 * Users one guard saw in one flush, for the cutover's gate: turned back by `kid`'s cutover (`cut`),
 * or let in (`allow`, kid ''), under the policy version the guard was enforcing at the time.
 */
export interface UserMarkRow {
  minute: number;
  policyVersion: number;
  kind: 'cut' | 'allow';
  kid: string;
  cohort: number;
  subs: string[];
}

export interface HotStore {
  readonly kind: 'redis' | 'tables';
  publishKeys(keys: PublishedKey[]): Promise<void>;
  publishPolicy(policy: HotPolicy): Promise<void>;
  putWatermarks(scope: WatermarkScope, entries: Array<[string, number | null]>): Promise<void>;
  putRevocations(kind: RevocationKind, entries: Array<[string, number | null]>): Promise<void>;
  putDevices(entries: DeviceEntry[]): Promise<void>;
  /** Adds to the reference ledger of a compromised key. */
  putLedger(kid: string, sids: string[], subs: string[]): Promise<void>;
  /** Adds decision counts (summed with what other instances added). */
  addCounters(rows: CounterRow[]): Promise<void>;
  readCounters(fromMinute: number): Promise<CounterRow[]>;
  addUserMarks(rows: UserMarkRow[]): Promise<void>;
  /**
   * Under policy version `fromPolicyVersion` and later ones, in the cohorts below `cohortsBelow`:
   * how many users `kid`'s cutover turned back, and how many of them got in on another key
   * (Redis: HyperLogLog estimates). Keyed by version, not by time, so that users an earlier stage
   * or an undone run turned back in the same minute are not counted against this stage.
   */
  returningUsers(q: { fromPolicyVersion: number; kid: string; cohortsBelow: number }): Promise<{ cut: number; back: number }>;
  snapshot(): Promise<HotSnapshot>;
  /** Changes after `cursor`, oldest first; 'gap' when the feed no longer reaches back that far. */
  changesSince(cursor: string, limit?: number): Promise<{ cursor: string; changes: HotChange[]; more: boolean } | 'gap'>;
  /**
   * Calls `onWake` soon after any change is written by any process, where the backend can push.
   * Returns a stop function, or undefined when only polling is possible.
   */
  watch(onWake: () => void): Promise<(() => Promise<void>) | undefined>;
  close(): Promise<void>;
}

export function emptySnapshot(cursor: string): HotSnapshot {
  return {
    cursor,
    keys: [],
    policy: null,
    watermarks: { user: new Map(), kid: new Map(), cohort: new Map() },
    revocations: { jti: new Map(), sid: new Map(), fph: new Map() },
    devices: [],
    ledger: new Map(),
  };
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
