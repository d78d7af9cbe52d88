import { open as unseal } from '../crypto/envelope.js';
import { normalizePolicy, type PolicyDoc } from '../state/policy.js';
import {
  REVOCATION_KINDS,
  type DeviceEntry,
  type HotChange,
  type HotSnapshot,
  type HotStore,
  type PublishedKey,
  type RevocationKind,
  type WatermarkScope,
} from '../store/hot/hot-store.js';
import { BloomMap } from './bloom-map.js';
import { createVerificationKey, type VerificationKey } from './verification-key.js';

/** A published key with its ready-to-use verifier (null when the key verifies nothing). */
export interface LiveKey {
  meta: PublishedKey;
  verifier: VerificationKey | null;
  /** The reference ledger of a compromised key; undefined while none is loaded. */
  ledger: { sids: Set<string>; subs: Set<string> } | undefined;
}

/**
 * What is known of one device of one user, as bits of a number (a number, not an object, so a
 * lookup on the request path is one Map probe without a further pointer to follow).
 */
export const DEVICE_CONFIRMED = 1;
export const DEVICE_BAD = 2;

/**
 * The guard's in-memory copy of the hot store: a snapshot, then every change from the feed.
 * The request path only reads these maps; it never waits on the network.
 */
export class Replica {
  keys = new Map<string, LiveKey>();
  kidlessKid: string | undefined;
  activeKid: string | undefined;
  policy: PolicyDoc = normalizePolicy(undefined);
  policyVersion = 0;
  /**
   * The highest cutover percentage of any key: users in cohorts below it are watched per user
   * (who was turned back, who came back on another key) for the cutover's health gate. 0: none.
   */
  maxCutover = 0;
  watermarks: Record<WatermarkScope, BloomMap> = { user: new BloomMap(), kid: new BloomMap(), cohort: new BloomMap() };
  /** Cohort watermarks indexed by cohort (epoch seconds, 0 for none): for every key, and per key. */
  cohortMarks = { all: new Float64Array(100), byKid: new Map<string, Float64Array>() };
  revocations: Record<RevocationKind, BloomMap> = { jti: new BloomMap(), sid: new BloomMap(), fph: new BloomMap() };
  /** sub → fph → what is known of that device (DEVICE_* bits). */
  devices = new Map<string, Map<string, number>>();
  private ledger = new Map<string, { sids: Set<string>; subs: Set<string> }>();
  cursor = '0';
  /** Bumped on every applied change; tests and health checks read it. */
  version = 0;
  /** Bumped when keys change: cached signature checks are only valid for one key set. */
  keysVersion = 0;

  /**
   * @param onUnusableKey told about a key that arrived through the feed but cannot be built (for
   *   example an empty secret); it then verifies nothing instead of stalling every later change.
   */
  constructor(
    private readonly kek: Buffer | undefined,
    private readonly onUnusableKey: (kid: string, error: Error) => void = () => {},
  ) {}

  load(snapshot: HotSnapshot): void {
    this.ledger = snapshot.ledger;
    // At start-up an unusable key is fatal: a guard configured with, say, an empty key refuses to start.
    this.applyKeys(snapshot.keys, true);
    this.setPolicy(snapshot.policy);
    this.watermarks = { user: new BloomMap(snapshot.watermarks.user), kid: new BloomMap(snapshot.watermarks.kid), cohort: new BloomMap(snapshot.watermarks.cohort) };
    this.indexCohortMarks();
    this.revocations = { jti: new BloomMap(snapshot.revocations.jti), sid: new BloomMap(snapshot.revocations.sid), fph: new BloomMap(snapshot.revocations.fph) };
    this.devices = new Map();
    this.applyDevices(snapshot.devices);
    this.cursor = snapshot.cursor;
    this.version += 1;
  }

  apply(change: HotChange): void {
    switch (change.t) {
      case 'keys':
        this.applyKeys(change.keys, false);
        break;
      case 'policy':
        // Two writers may push out of order; a guard never goes back to an older version.
        if (change.policy.version >= this.policyVersion) this.setPolicy(change.policy);
        break;
      case 'wm':
        this.watermarks[change.scope].apply(change.entries);
        if (change.scope === 'cohort') this.indexCohortMarks();
        break;
      case 'rev':
        this.revocations[change.kind].apply(change.entries);
        break;
      case 'dev':
        this.applyDevices(change.entries);
        break;
      case 'ledger': {
        let entry = this.ledger.get(change.kid);
        if (!entry) this.ledger.set(change.kid, (entry = { sids: new Set(), subs: new Set() }));
        for (const sid of change.sids) entry.sids.add(sid);
        for (const sub of change.subs) entry.subs.add(sub);
        const key = this.keys.get(change.kid);
        if (key) key.ledger = entry;
        break;
      }
    }
    this.version += 1;
  }

  /** The not-before (epoch seconds) a cohort watermark sets for a token of `kid` in `cohort`; 0 for none. */
  cohortMark(kid: string, cohort: number): number {
    if (cohort < 0) return 0;
    const forKid = this.cohortMarks.byKid.get(kid);
    return Math.max(this.cohortMarks.all[cohort]!, forKid ? forKid[cohort]! : 0);
  }

  /** Subjects are "<n>" (every key) or "<kid>#<n>": turned into arrays once, not parsed per request. */
  private indexCohortMarks(): void {
    const all = new Float64Array(100);
    const byKid = new Map<string, Float64Array>();
    for (const [subject, notBefore] of this.watermarks.cohort.entries()) {
      const hash = subject.lastIndexOf('#');
      const cohort = Number(subject.slice(hash + 1));
      if (!Number.isInteger(cohort) || cohort < 0 || cohort > 99) continue;
      let marks: Float64Array = all;
      if (hash >= 0) {
        const kid = subject.slice(0, hash);
        marks = byKid.get(kid) ?? new Float64Array(100);
        byKid.set(kid, marks);
      }
      marks[cohort] = Math.max(marks[cohort]!, notBefore);
    }
    this.cohortMarks = { all, byKid };
  }

  /** Drops revocations whose tokens have expired anyway; keeps memory bounded over a long incident. */
  pruneExpired(nowSec: number): void {
    for (const kind of REVOCATION_KINDS) this.revocations[kind].pruneExpired(nowSec);
  }

  private setPolicy(policy: { version: number; doc: Record<string, unknown> } | null): void {
    this.policy = normalizePolicy(policy?.doc);
    this.policyVersion = policy?.version ?? 0;
    this.maxCutover = Math.max(0, ...Object.values(this.policy.kids).map((k) => k.cutoverPercent ?? 0));
  }

  private applyDevices(entries: DeviceEntry[]): void {
    for (const d of entries) {
      let forUser = this.devices.get(d.sub);
      if (!forUser) this.devices.set(d.sub, (forUser = new Map()));
      forUser.set(d.fph, (d.confirmed ? DEVICE_CONFIRMED : 0) | (d.reputation === 'bad' ? DEVICE_BAD : 0));
    }
  }

  private applyKeys(published: PublishedKey[], strict: boolean): void {
    const next = new Map<string, LiveKey>();
    for (const meta of published) {
      const previous = this.keys.get(meta.kid);
      // Reuse the verifier when the material is unchanged: unsealing and key import are not free.
      const sameMaterial = previous && previous.meta.sealedSecret === meta.sealedSecret && JSON.stringify(previous.meta.publicJwk) === JSON.stringify(meta.publicJwk);
      let verifier: VerificationKey | null = null;
      if (meta.state !== 'disabled' && meta.state !== 'destroyed') {
        try {
          verifier = sameMaterial && previous.verifier ? previous.verifier : this.verifierFor(meta);
        } catch (error) {
          if (strict) throw error;
          this.onUnusableKey(meta.kid, error as Error);
        }
      }
      next.set(meta.kid, { meta, verifier, ledger: this.ledger.get(meta.kid) });
    }
    this.keys = next;
    this.kidlessKid = published.find((k) => k.kidless)?.kid;
    this.activeKid = published.find((k) => k.state === 'active')?.kid;
    this.keysVersion += 1;
  }

  private verifierFor(meta: PublishedKey): VerificationKey {
    if (meta.alg === 'HS256') {
      if (!meta.sealedSecret) throw new TypeError(`key ${meta.kid} has no secret`);
      if (!this.kek) {
        throw new TypeError(`key ${meta.kid} is HS256 and the guard has no KEK to unseal it: set JWTIR_KEK (or pass kek)`);
      }
      let secret: Buffer;
      try {
        secret = unseal(this.kek, meta.sealedSecret, meta.kid);
      } catch {
        throw new TypeError(`the guard's KEK cannot unseal key ${meta.kid}: it is not the KEK this state was set up with`);
      }
      return createVerificationKey(meta.kid, meta.alg, { secret });
    }
    if (!meta.publicJwk) throw new TypeError(`key ${meta.kid} has no public key`);
    return createVerificationKey(meta.kid, meta.alg, { jwk: meta.publicJwk });
  }
}

/** Brings a replica up to date with the feed; falls back to a fresh snapshot after a gap. */
export async function catchUp(replica: Replica, hot: HotStore): Promise<number> {
  let applied = 0;
  for (;;) {
    const page = await hot.changesSince(replica.cursor);
    if (page === 'gap') {
      replica.load(await hot.snapshot());
      return applied + 1;
    }
    for (const change of page.changes) replica.apply(change);
    applied += page.changes.length;
    replica.cursor = page.cursor;
    if (!page.more) return applied;
  }
}
