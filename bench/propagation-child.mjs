// One guard instance for the revocation-propagation benchmark (spawned by bench/guard.mjs).
// It creates a guard on the shared Postgres + Redis with the default push (Redis Streams), then
// watches one token at a time: as soon as its guard denies the token for a revoked jti, it
// reports the moment (performance.timeOrigin + performance.now(), comparable across processes).
import { createGuard } from '../dist/guard/index.js';

const env = process.env;
const stamp = () => performance.timeOrigin + performance.now();

/** The token being watched: { id, token, ctx }. */
let watch;
let guard;

function check(via) {
  if (!watch || !guard) return;
  const v = guard.authorize(watch.token, watch.ctx);
  if (v.decision === 'deny' && v.reasons[0] === 'revoked_jti') {
    const t = stamp();
    const id = watch.id;
    watch = undefined;
    process.send({ type: 'denied', id, t, via });
  }
}

// Belt and braces: the 'synced' event is the primary signal; a slow interval catches anything
// the event path might miss (and the parent reports which path saw the revocation).
const fallback = setInterval(() => check('interval'), 5);

process.on('message', async (m) => {
  if (m.type === 'watch') {
    const v = guard.authorize(m.token, m.ctx);
    if (v.decision === 'allow') watch = { id: m.id, token: m.token, ctx: m.ctx };
    process.send({ type: 'watching', id: m.id, decision: v.decision, reasons: v.reasons });
  } else if (m.type === 'close') {
    clearInterval(fallback);
    await guard?.close().catch(() => {});
    process.exit(0);
  }
});
// The parent went away (finished or crashed): never linger.
process.on('disconnect', () => process.exit(0));

try {
  guard = await createGuard({
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    schema: env.JWTIR_SCHEMA,
    redisPrefix: env.JWTIR_REDIS_PREFIX,
    kek: env.JWTIR_KEK,
    onEvent: (e) => {
      if (e.type === 'synced') check('synced');
    },
  });
  process.send({ type: 'ready', pid: process.pid, version: guard.version });
} catch (error) {
  process.send({ type: 'error', message: String(error?.stack ?? error) });
  process.exit(1);
}
