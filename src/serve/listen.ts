import { UsageError } from '../errors.js';

/** Where the server listens: a TCP host and port, or a Unix socket (nginx can proxy to either). */
export type ListenAddress = { host: string; port: number } | { socket: string };

/**
 * `127.0.0.1:9090`, `[::1]:9090`, `0.0.0.0:9090` or `unix:/run/jwtir/serve.sock`. The host is
 * always written out: a bare `:9090` would listen on every interface, which should be a choice.
 */
export function parseListen(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const socket = text.slice('unix:'.length);
    if (!socket.startsWith('/')) throw new UsageError(`--listen ${text}: a Unix socket needs an absolute path, like unix:/run/jwtir/serve.sock`);
    return { socket };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`--listen "${text}" is not <host>:<port> or unix:<path>`, {
      hint: 'for example --listen 127.0.0.1:9090, --listen [::1]:9090 or --listen unix:/run/jwtir/serve.sock',
    });
  }
  return { host: (m[1] ?? m[2])!, port };
}
