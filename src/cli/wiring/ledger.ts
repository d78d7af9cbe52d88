import { Option, type Command } from 'commander';
import { action, command } from '../define.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Defines the `ledger` commands (see define.ts for the helpers). */
export function registerLedger(program: Command): void {
  const ledger = program.command('ledger').description("the session ledger: the sessions the service really issued (the forgery check's reference)");
  command(ledger, 'import', "import the service's sessions from its database, a CSV or NDJSON file, or its Redis session store (runbooks/ledger-import.yaml)", [
    "PGPASSWORD=... jwtir ledger import --from-sql 'SELECT id, user_id, created_at, expires_at, roles FROM app.sessions' --source-url postgres://reader@db:5432/app --map sid=id,sub=user_id,issued_at=created_at --yes",
    'jwtir ledger import --from-file sessions.ndjson --kid legacy --dry-run',
    'jwtir ledger import --from-file export.csv --mapping ledger-mapping.json --yes',
    "jwtir ledger import --from-redis 'sess:*' --source-redis-url redis://sessions:6379/0 --map sub=passport.user --yes",
    'jwtir ledger import --from-file sessions.ndjson --yes   # again later: reads only what was appended',
  ])
    .option('--kid <kid>', 'the key that signed these sessions\' tokens (default: the only kid-less key, else the only compromised one, else the active one)')
    .optionsGroup('Source (exactly one):')
    .option('--from-sql <query>', "a query against the service's Postgres, run read-only through a cursor")
    .option('--from-file <path>', 'a CSV file with a header row, or an NDJSON file (one JSON object per line)')
    .option('--from-redis <pattern>', "the keys of a Redis session store holding JSON, e.g. 'sess:*' (connect-redis)")
    .optionsGroup('Where the source is:')
    .option('--source-url <url>', "the service's Postgres URL without a password (PGPASSWORD is honoured)")
    .option('--source-url-env <VAR>', "read the service's Postgres URL from this environment variable (it may hold a password)")
    .option('--source-redis-url <url>', 'the Redis URL without a password')
    .option('--source-redis-url-env <VAR>', 'read the Redis URL from this environment variable (it may hold a password)')
    .addOption(new Option('--format <format>', 'the file format (default: from the extension: .csv, else .ndjson/.jsonl/.json)').choices(['csv', 'ndjson']))
    .optionsGroup('Mapping (fields sid, sub, issued_at, expires_at required; roles, fph, device, place optional):')
    .option('--map <field=column,...>', 'where each field comes from: a column, a dotted JSON path, or a rule (@key, @cookie, @ttl, @now); field= leaves an optional field out (repeatable)', collect)
    .option('--mapping <file.json>', 'the same as a JSON object {"sid": "id", ...}; --map wins over it')
    .optionsGroup('Options:')
    .option('--full', 'read the whole source again, not only what came after the last import of it')
    .option('--dry-run', 'read and check the source and print the plan with its counts; change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('../commands/ledger.js')).importLedger));
}
