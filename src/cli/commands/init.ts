import type { CommandContext } from '../context.js';
import { MIGRATIONS } from '../../store/migrate.js';

/** `jwtir init`: creates or upgrades the schema and, for the embedded default, its KEK file. */
export async function init(ctx: CommandContext): Promise<void> {
  ctx.mayCreateState = true;
  const backends = await ctx.backends();
  const kek = await ctx.kek();
  const data = {
    backend: backends.label,
    database: backends.db.description,
    schemaVersion: MIGRATIONS.at(-1)!.version,
    kek: { id: kek.id, source: kek.source },
  };
  ctx.out.result(data, () =>
    [
      `${ctx.out.color.green('✔')} state ready: ${data.database} (${data.backend}), schema version ${data.schemaVersion}`,
      `${ctx.out.color.green('✔')} key-encryption key ${kek.id} from ${kek.source}`,
      backends.embedded ? ctx.out.color.dim('  keep a backup of the KEK file: without it the stored private keys cannot be decrypted') : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
}
