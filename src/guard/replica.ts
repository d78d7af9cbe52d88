import { open as unseal } from '../crypto/envelope.js';
import type { HotChange, HotPolicy, HotSnapshot, HotStore, PublishedKey, WatermarkScope } from '../store/hot/hot-store.js';
import { createVerificationKey, type VerificationKey } from './verification-key.js';

/** A published key with its ready-to-use verifier (null when the key verifies nothing). */
export interface LiveKey {
  meta: PublishedKey;
  verifier: VerificationKey | null;
}

/**
 * The guard's in-memory copy of the hot store: a snapshot, then every change from the feed.
 * The request path only reads these maps; it never waits on the network.
 */
export class Replica {
  keys = new Map<string, LiveKey>();
  kidlessKid: string | undefined;
  activeKid: string | undefined;
  policy: HotPolicy | null = null;
  readonly watermarks: Record<WatermarkScope, Map<string, number>> = { user: new Map(), kid: new Map() };
  cursor = '0';
  /** Bumped on every applied change; tests and health checks read it. */
  version = 0;

  constructor(private readonly kek: Buffer | undefined) {}

  load(snapshot: HotSnapshot): void {
    this.applyKeys(snapshot.keys);
    this.policy = snapshot.policy;
    this.watermarks.user = new Map(snapshot.watermarks.user);
    this.watermarks.kid = new Map(snapshot.watermarks.kid);
    this.cursor = snapshot.cursor;
    this.version += 1;
  }

  apply(change: HotChange): void {
    if (change.t === 'keys') this.applyKeys(change.keys);
    else if (change.t === 'policy') this.policy = change.policy;
    else {
      const map = this.watermarks[change.scope];
      for (const [subject, nb] of change.entries) {
        if (nb === null) map.delete(subject);
        else map.set(subject, nb);
      }
    }
    this.version += 1;
  }

  private applyKeys(published: PublishedKey[]): void {
    const next = new Map<string, LiveKey>();
    for (const meta of published) {
      const previous = this.keys.get(meta.kid);
      // Reuse the verifier when the material is unchanged: unsealing and key import are not free.
      const sameMaterial = previous && previous.meta.sealedSecret === meta.sealedSecret && JSON.stringify(previous.meta.publicJwk) === JSON.stringify(meta.publicJwk);
      const verifier = meta.state === 'disabled' || meta.state === 'destroyed' ? null : sameMaterial && previous.verifier ? previous.verifier : this.verifierFor(meta);
      next.set(meta.kid, { meta, verifier });
    }
    this.keys = next;
    this.kidlessKid = published.find((k) => k.kidless)?.kid;
    this.activeKid = published.find((k) => k.state === 'active')?.kid;
  }

  private verifierFor(meta: PublishedKey): VerificationKey {
    if (meta.alg === 'HS256') {
      if (!meta.sealedSecret) throw new TypeError(`key ${meta.kid} has no secret`);
      if (!this.kek) {
        throw new TypeError(`key ${meta.kid} is HS256 and the guard has no KEK to unseal it: set JWTIR_KEK (or pass kek)`);
      }
      return createVerificationKey(meta.kid, meta.alg, { secret: unseal(this.kek, meta.sealedSecret, meta.kid) });
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
    if (page.changes.length === 0) return applied;
  }
}
