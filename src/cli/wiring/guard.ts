import type { Command } from 'commander';
import { action, command } from '../define.js';

/** Defines the `guard` commands: the guard as a service, for gateways that cannot embed the library. */
export function registerGuard(program: Command): void {
  const guard = program.command('guard').description('the guard as a service, in front of any gateway');
  command(guard, 'serve', 'forward-auth decision endpoint for nginx auth_request, Envoy ext_authz and Traefik ForwardAuth', [
    'jwtir guard serve --listen 127.0.0.1:9090 --serve-config serve.yaml',
    'jwtir guard serve --listen unix:/run/jwtir/serve.sock --serve-config serve.yaml --workers 2',
    'jwtir guard serve --serve-config serve.yaml --check   # validate the config and the state, then exit',
  ])
    .option('--listen <address>', 'host:port, [ipv6]:port or unix:<path>', '127.0.0.1:9090')
    .option('--serve-config <file>', 'token source, fingerprint header, path rules, header names (YAML or JSON; see examples/serve.yaml)')
    .option('--workers <n>', 'processes sharing the address, each its own guard (Postgres only)', '1')
    .option('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT, how long requests in flight may take to finish', '10s')
    .option('--check', 'validate the config, open the state and exit, without serving')
    .action(action(async () => (await import('../commands/guard-serve.js')).serve));
}
