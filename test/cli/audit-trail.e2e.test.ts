import { beforeAll, expect, it } from '@jest/globals';
import { runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

for (const c of backendCases('audit', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'the audit trail', () => {
    beforeAll(async () => {
      await runOk(['init'], { env: c.env });
      await runOk(['keys', 'generate', '--alg', 'ES256', '--publish', '--yes'], { env: c.env });
      await runOk(['keys', 'generate', '--alg', 'EdDSA', '--yes'], { env: c.env });
    });

    it('verifies intact, then names the first altered row and exits 6', async () => {
      const ok = await runOk(['audit', 'trail', '--json'], { env: c.env });
      expect(ok.json).toMatchObject({ intact: true });
      expect(ok.json.rows).toBeGreaterThanOrEqual(10);
      // Someone with database access rewrites who did something in row 4.
      await withState(c.env, (b) => b.db.query(`UPDATE audit SET body = jsonb_set(body, '{actor}', '"mallory"') WHERE seq = 4`));
      const bad = await runCli(['audit', 'trail', '--json'], { env: c.env });
      expect(bad.code).toBe(6);
      expect(bad.json.error.code).toBe('ERR_AUDIT_TAMPERED');
      expect(bad.json.error.message).toBe('the audit trail is broken at row 4: its content does not match its hash (the row was altered)');
    });

    it('detects a removed row even when the rest is recomputed consistently up to it', async () => {
      await withState(c.env, (b) => b.db.query(`DELETE FROM audit WHERE seq = 2`));
      const bad = await runCli(['audit', 'trail', '--json'], { env: c.env });
      expect(bad.code).toBe(6);
      expect(bad.json.error.message).toMatch(/broken at row 3: expected row 2 here/);
    });

    it('when the audit trail cannot be written, the change does not happen (fail closed)', async () => {
      await withState(c.env, (b) =>
        b.db.exec(`
          CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit storage is read-only'; END $$;
          CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit();`),
      );
      const before = await runOk(['keys', 'list', '--json'], { env: c.env });
      const res = await runCli(['keys', 'generate', '--alg', 'RS256', '--yes', '--json'], { env: c.env });
      expect(res.code).toBe(6);
      expect(res.json.error.code).toBe('ERR_AUDIT_UNWRITABLE');
      expect(res.stderr).toContain('audit storage is read-only');
      const after = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(after.json.keys).toEqual(before.json.keys);
      // No run was left behind holding the keys lock.
      const status = await runOk(['status', '--json'], { env: c.env });
      expect(status.json.runs).toEqual([]);
    });
  });
}
