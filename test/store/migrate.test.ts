import { expect, it } from '@jest/globals';
import { resolveSettings } from '../../src/config/settings.js';
import { MIGRATIONS, migrate } from '../../src/store/migrate.js';
import { openPostgres } from '../../src/store/postgres.js';
import { openBackends } from '../../src/store/open.js';
import { backendCases, describeBackend, freshCase } from '../helpers/services.js';

const pgCase = freshCase('postgres', 'migrate');
describeBackend(pgCase, 'schema migrations on Postgres', () => {
  it('applied by four processes at once: each migration exactly once, every opener succeeds', async () => {
    const settings = resolveSettings({}, pgCase.env);
    const dbs = await Promise.all([1, 2, 3, 4].map(() => openPostgres(settings.databaseUrl!, settings.schema)));
    try {
      const applied = await Promise.all(dbs.map((db) => migrate(db, settings.schema)));
      expect(applied.flat().sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
      const rows = await dbs[0]!.query<{ version: number }>('SELECT version FROM schema_migrations');
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      // Re-running is a no-op.
      expect(await migrate(dbs[1]!, settings.schema)).toEqual([]);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  });
});

for (const c of backendCases('migrate-open', ['embedded'])) {
  describeBackend(c, 'schema migrations on the embedded default', () => {
    it('run on first use and are idempotent across reopenings', async () => {
      const first = await openBackends(resolveSettings({}, c.env));
      const tables = await first.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'jwtir'`);
      expect(tables[0]!.n).toBeGreaterThanOrEqual(10);
      await first.close();
      const again = await openBackends(resolveSettings({}, c.env));
      expect(await migrate(again.db, 'jwtir')).toEqual([]);
      await again.close();
    });
  });
}
