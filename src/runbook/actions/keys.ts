import { z } from 'zod';
import { InvalidStateError, UsageError } from '../../errors.js';
import { generateKeyMaterial, newKid } from '../../crypto/keygen.js';
import { seal } from '../../crypto/envelope.js';
import { findActiveKey, findKey, findKeyByOrigin, getKey, insertKey, syncKeysToHotStore } from '../../state/keys.js';
import { syncLedgerToHotStore } from '../../state/ledger.js';
import { defineAction, type ActionContext } from './action.js';

const ALG = z.enum(['HS256', 'RS256', 'ES256', 'EdDSA']);
const tagOf = (ctx: ActionContext) => `run:${ctx.runId}:${ctx.step}`;

/** Stores a secret the service already signs with. The secret arrives sealed under the KEK. */
export const keyImport = defineAction({
  name: 'key.import',
  mutates: true,
  needsKek: true,
  outputs: ['kid', 'state'],
  input: z.object({ kid: z.string().min(1).max(256), alg: ALG, sealedSecret: z.string().min(1), weak: z.boolean(), kidless: z.boolean() }),
  describe: (i) => `import ${i.alg} key ${i.kid}${i.weak ? ' (WEAK secret, allowed by --allow-weak)' : ''}${i.kidless ? ', answering for tokens without a kid' : ''}`,
  async apply(ctx, i) {
    await ctx.kek();
    const db = ctx.backends.db;
    const existing = await findKey(db, i.kid);
    if (existing && existing.originRun !== ctx.runId) {
      throw new InvalidStateError(`a key with kid "${i.kid}" already exists`, { hint: 'choose another --kid' });
    }
    const state = existing?.state ?? ((await findActiveKey(db)) ? 'staged' : 'active');
    // A resumed import finds its own key and still publishes and pushes it (the crash may have come between).
    if (!existing) await insertKey(db, {
      kid: i.kid,
      alg: i.alg,
      state,
      publicJwk: undefined,
      privateEnc: i.sealedSecret,
      kidless: i.kidless,
      weak: i.weak,
      origin: 'imported',
      originRun: ctx.runId,
      originStep: ctx.step,
    });
    // The service's verifiers already trust this secret, so it is published from the start.
    await db.query('UPDATE keys SET published_at = coalesce(published_at, now()) WHERE kid = $1', [i.kid]);
    await syncKeysToHotStore(db, ctx.backends.hot);
    return { kid: i.kid, state };
  },
});

/** Undo of an import: the key row is removed, as if it had never been imported. */
export const keyForget = defineAction({
  name: 'key.forget',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string() }),
  describe: (i) => `remove key ${i.kid} from the key store`,
  async apply(ctx, i) {
    await ctx.backends.db.query('DELETE FROM keys WHERE kid = $1', [i.kid]);
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return {};
  },
});

export const keyGenerate = defineAction({
  name: 'key.generate',
  mutates: true,
  needsKek: true,
  outputs: ['kid', 'alg'],
  input: z.object({ alg: ALG }),
  describe: (i) => `generate a new ${i.alg} key (staged: not yet published, not signing)`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    // One key per run and step (unique index): a resumed step finds the key it made before.
    const existing = await findKeyByOrigin(db, ctx.runId, ctx.step);
    if (existing) return { kid: existing.kid, alg: existing.alg };
    const kek = await ctx.kek();
    const material = generateKeyMaterial(i.alg);
    const kid = newKid(i.alg);
    await insertKey(db, {
      kid,
      alg: i.alg,
      state: 'staged',
      publicJwk: material.publicJwk,
      privateEnc: seal(kek.key, material.privateMaterial, kid),
      kidless: false,
      weak: false,
      origin: 'generated',
      originRun: ctx.runId,
      originStep: ctx.step,
    });
    material.privateMaterial.fill(0);
    return { kid, alg: i.alg };
  },
});

/** Undo of a generation: the private material is shredded and the key verifies nothing. */
export const keyDestroy = defineAction({
  name: 'key.destroy',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string() }),
  describe: (i) => `destroy key ${i.kid} (shred its private material)`,
  async apply(ctx, i) {
    const key = await findKey(ctx.backends.db, i.kid);
    if (!key) return {};
    if (key.state === 'active') {
      throw new InvalidStateError(`key ${i.kid} is the active signing key and cannot be destroyed`, {
        hint: 'activate another key first (roll back the activation step)',
      });
    }
    await ctx.backends.db.query(`UPDATE keys SET state = 'destroyed', private_enc = NULL, updated_at = now() WHERE kid = $1`, [i.kid]);
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return {};
  },
});

export const keyPublish = defineAction({
  name: 'key.publish',
  mutates: true,
  outputs: ['kid', 'publishedAt'],
  input: z.object({ kid: z.string() }),
  describe: (i) => `publish key ${i.kid} to every guard (it verifies, it does not sign yet)`,
  async apply(ctx, i) {
    const key = await getKey(ctx.backends.db, i.kid);
    if (key.state === 'destroyed' || key.state === 'disabled') {
      throw new InvalidStateError(`key ${i.kid} is ${key.state} and cannot be published`);
    }
    const [row] = await ctx.backends.db.query<{ published_at: Date }>(
      'UPDATE keys SET published_at = coalesce(published_at, now()), updated_at = now() WHERE kid = $1 RETURNING published_at',
      [i.kid],
    );
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return { kid: i.kid, publishedAt: new Date(row!.published_at).toISOString() };
  },
});

export const keyUnpublish = defineAction({
  name: 'key.unpublish',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string() }),
  describe: (i) => `withdraw key ${i.kid} from the guards`,
  async apply(ctx, i) {
    const key = await findKey(ctx.backends.db, i.kid);
    if (key?.state === 'active') throw new InvalidStateError(`key ${i.kid} is signing and cannot be withdrawn`);
    await ctx.backends.db.query('UPDATE keys SET published_at = NULL, updated_at = now() WHERE kid = $1', [i.kid]);
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return {};
  },
});

/**
 * Makes `kid` the signing key. The previous active key becomes retiring and keeps verifying
 * until now + grace, so sessions it signed end on their own schedule instead of all at once.
 */
export const keyActivate = defineAction({
  name: 'key.activate',
  mutates: true,
  outputs: ['kid', 'retired', 'verifyUntil'],
  input: z.object({ kid: z.string(), retire: z.string().nullable(), graceMs: z.number().int().nonnegative() }),
  describe: (i) => `sign with ${i.kid}${i.retire ? `; ${i.retire} becomes retiring and verifies for ${Math.round(i.graceMs / 1000)}s more` : ''}`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    const key = await getKey(db, i.kid);
    if (key.state !== 'active') {
      if (key.state !== 'staged') throw new InvalidStateError(`key ${i.kid} is ${key.state}; only a staged key can be activated`);
      if (!key.publishedAt) {
        throw new InvalidStateError(`key ${i.kid} is not published yet`, { hint: 'verifiers must learn a key before tokens use it: publish it first' });
      }
      await db.transaction(async (tx) => {
        if (i.retire) {
          await tx.query(
            `UPDATE keys SET state = 'retiring', retired_at = now(), verify_until = now() + ($2::bigint * interval '1 millisecond'), updated_at = now()
             WHERE kid = $1 AND state = 'active'`,
            [i.retire, i.graceMs],
          );
        }
        await tx.query(`UPDATE keys SET state = 'active', activated_at = now(), updated_at = now() WHERE kid = $1`, [i.kid]);
      });
    }
    await syncKeysToHotStore(db, ctx.backends.hot);
    const retired = i.retire ? await findKey(db, i.retire) : undefined;
    return { kid: i.kid, retired: i.retire, verifyUntil: retired?.verifyUntil?.toISOString() ?? null };
  },
  async impact(backends, i) {
    if (!i.retire) return { sessions: 0, users: 0 };
    const [row] = await backends.db.query<{ sessions: number; users: number }>(
      `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions WHERE kid = $1 AND expires_at > now()`,
      [i.retire],
    );
    return { ...row!, note: `live sessions on ${i.retire}: they keep working until the grace period ends` };
  },
});

/** Undo of an activation: the retired key signs again, the new one goes back to staged. */
export const keyReactivate = defineAction({
  name: 'key.reactivate',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string().nullable(), demote: z.string() }),
  describe: (i) => `sign with ${i.kid ?? '(none)'} again; ${i.demote} goes back to staged`,
  async apply(ctx, i) {
    await ctx.backends.db.transaction(async (tx) => {
      await tx.query(`UPDATE keys SET state = 'staged', activated_at = NULL, updated_at = now() WHERE kid = $1 AND state = 'active'`, [i.demote]);
      if (i.kid) {
        await tx.query(
          `UPDATE keys SET state = 'active', retired_at = NULL, verify_until = NULL, updated_at = now() WHERE kid = $1 AND state = 'retiring'`,
          [i.kid],
        );
      }
    });
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return {};
  },
});

export const keyFlagCompromised = defineAction({
  name: 'key.flag-compromised',
  mutates: true,
  outputs: ['kid', 'compromisedAt'],
  input: z.object({ kid: z.string() }),
  describe: (i) => `flag key ${i.kid} as compromised (the guard treats its tokens as suspect)`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    await getKey(db, i.kid);
    // Tagged with run and step: only this step's undo may clear a flag this step set.
    await db.query(
      `UPDATE keys SET compromised = true, compromised_at = now(), compromised_by = $2, updated_at = now() WHERE kid = $1 AND NOT compromised`,
      [i.kid, tagOf(ctx)],
    );
    await syncKeysToHotStore(db, ctx.backends.hot);
    // The guard's forgery check compares this key's tokens with the sessions it really signed.
    const ledger = await syncLedgerToHotStore(db, ctx.backends.hot, i.kid);
    ctx.progress(`pushed the ledger of ${i.kid} (${ledger} sessions) to the guards for the forgery check`);
    const key = await getKey(db, i.kid);
    return { kid: i.kid, compromisedAt: key.compromisedAt!.toISOString() };
  },
});

export const keyUnflagCompromised = defineAction({
  name: 'key.unflag-compromised',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string() }),
  describe: (i) => `clear the compromised flag of ${i.kid} (only if this run set it)`,
  async apply(ctx, i) {
    await ctx.backends.db.query(
      `UPDATE keys SET compromised = false, compromised_at = NULL, compromised_by = NULL, updated_at = now() WHERE kid = $1 AND compromised_by = $2`,
      [i.kid, tagOf(ctx)],
    );
    await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    return {};
  },
});

export function assertAlg(alg: string): asserts alg is z.infer<typeof ALG> {
  if (!ALG.safeParse(alg).success) throw new UsageError(`unsupported algorithm "${alg}"`, { hint: 'use one of HS256, RS256, ES256, EdDSA' });
}
