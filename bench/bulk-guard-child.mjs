// One guard instance for `npm run bench:bulk` (spawned by bench/bulk.mjs). It creates a guard on
// the shared Postgres + Redis (default push through Redis Streams), is handed a set of tokens that
// it must allow now, and reports the moment its guard denies every one of them (stamps are
// performance.timeOrigin + performance.now(), comparable across processes).
import { createGuard } from '../dist/guard/index.js';

const env = process.env;
const stamp = () => performance.timeOrigin + performance.now();
let guard;
/** { id, tokens: string[], pending: Set<number> } while watching. */
let watch;

function check() {
  if (!watch || !guard) return;
  for (const i of watch.pending) if (guard.verify(watch.tokens[i]).decision === 'deny') watch.pending.delete(i);
  if (watch.pending.size === 0) {
    const { id } = watch;
    watch = undefined;
    process.send({ type: 'denied', id, t: stamp() });
  }
}
const fallback = setInterval(check, 5);

process.on('message', async (m) => {
  if (m.type === 'watch') {
    const denied = m.tokens.map((t) => guard.verify(t)).filter((v) => v.decision !== 'allow');
    watch = { id: m.id, tokens: m.tokens, pending: new Set(m.tokens.map((_, i) => i)) };
    process.send({ type: 'watching', id: m.id, alreadyDenied: denied.length, reasons: denied.slice(0, 3).map((v) => v.reasons.join(',')) });
  } else if (m.type === 'close') {
    clearInterval(fallback);
    await guard?.close().catch(() => {});
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

try {
  guard = await createGuard({
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    schema: env.JWTIR_SCHEMA,
    redisPrefix: env.JWTIR_REDIS_PREFIX,
    kek: env.JWTIR_KEK,
    onEvent: (e) => {
      if (e.type === 'synced') check();
    },
  });
  process.send({ type: 'ready', pid: process.pid });
} catch (error) {
  process.send({ type: 'error', message: String(error?.stack ?? error) });
  process.exit(1);
}
