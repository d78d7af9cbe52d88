/**
 * Where each gateway puts the original request in its check request:
 * - nginx `auth_request`: a GET subrequest to /auth/nginx; the config passes `X-Original-Method`
 *   ($request_method) and `X-Original-URI` ($request_uri).
 * - Envoy `ext_authz` (HTTP service): the original method, and the original path behind the
 *   configured `path_prefix`.
 * - Traefik ForwardAuth: a GET to /auth/traefik with `X-Forwarded-Method` and `X-Forwarded-Uri`.
 */
import type { IncomingMessage } from 'node:http';
import type { Protocol } from './answer.js';

export interface Route {
  protocol: Protocol;
  method: string | undefined;
  target: string | undefined;
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export class Router {
  constructor(private readonly envoyPrefix: string) {}

  /** The check endpoint a request is for (undefined: not a check request). */
  route(req: IncomingMessage, path: string): Route | undefined {
    const h = req.headers;
    if (path === '/auth/nginx') return { protocol: 'nginx', method: first(h['x-original-method']), target: first(h['x-original-uri']) };
    if (path === '/auth/traefik') return { protocol: 'traefik', method: first(h['x-forwarded-method']), target: first(h['x-forwarded-uri']) };
    const url = req.url ?? '';
    const p = this.envoyPrefix;
    if (url.startsWith(p) && (url.length === p.length || url[p.length] === '/' || url[p.length] === '?')) {
      const rest = url.slice(p.length);
      return { protocol: 'envoy', method: req.method, target: rest.startsWith('/') ? rest : `/${rest}` };
    }
    return undefined;
  }
}

/** The path of a request URL, without its query. */
export function pathOnly(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
