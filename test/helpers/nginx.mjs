// A real nginx (Debian's package) run unprivileged for the forward-auth test and benchmark: its
// own prefix, pid file, logs and temp paths under a temp directory, in the foreground. The site
// is examples/nginx.conf itself with the test's addresses, so the documented config is what runs.
// Plain JavaScript (typed by nginx.d.mts) so that bench/forward-auth.mjs shares it.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NGINX_EXAMPLE = path.join(ROOT, 'examples', 'nginx.conf');

/** `{ bin }` of an nginx with the auth_request module, or `{ missing }` saying what is wrong. */
export function findNginx() {
  for (const bin of ['nginx', '/usr/sbin/nginx']) {
    // nginx -V prints its build options on stderr.
    const r = spawnSync(bin, ['-V'], { encoding: 'utf8' });
    if (r.error) continue;
    if (!`${r.stdout}${r.stderr}`.includes('--with-http_auth_request_module')) return { missing: `${bin} was built without the auth_request module` };
    return { bin };
  }
  return { missing: 'nginx is not installed (Debian: apt-get install nginx)' };
}

/**
 * examples/nginx.conf with the guard, the upstream and the listen address replaced.
 * `guard` is `host:port` or `unix:/path`.
 */
export function exampleSite({ guard, upstream, listen }) {
  const text = readFileSync(NGINX_EXAMPLE, 'utf8');
  const out = text.replace('server 127.0.0.1:9090;', `server ${guard};`).replace('server 127.0.0.1:8080;', `server ${upstream};`).replace('listen 80;', `listen ${listen};`);
  if (out === text || !out.includes(`server ${guard};`) || !out.includes(`server ${upstream};`) || !out.includes(`listen ${listen};`)) {
    throw new Error('examples/nginx.conf no longer has the addresses the harness replaces (127.0.0.1:9090, 127.0.0.1:8080, listen 80)');
  }
  return out;
}

/**
 * Starts nginx in the foreground with `site` (http-level directives) and waits until every port
 * in `ports` accepts connections. Returns { stop(), errorLog() }.
 */
export async function startNginx({ bin, dir, site, ports, workers = 1 }) {
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  writeFileSync(path.join(dir, 'site.conf'), site);
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    // As root (a CI container), workers would run as nobody and could not reach the guard's
    // socket or the temp directory; unprivileged, nginx ignores this line with a notice.
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes ${workers};
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/site.conf;
}
`,
  );
  // -e: even before it reads the config, nginx logs here rather than to /var/log/nginx (not writable unprivileged).
  const child = spawn(bin, ['-p', dir, '-e', path.join(dir, 'logs', 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid;`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const errorLog = () => {
    try {
      return readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + 10_000;
  for (const port of ports) {
    while (!(await accepts(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not start (exit ${child.exitCode}):\n${stderr}\n${errorLog()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return {
    pid: child.pid,
    errorLog,
    /** Graceful stop (SIGQUIT), then SIGKILL after 5 s. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
