import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  /** Date.now() when the request body had arrived. */
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An answer: a status with optional headers and body, `hang` (never answer) or `drop` (close the socket). */
export type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'drop';

/**
 * A real HTTP server on 127.0.0.1 standing in for a chat webhook or a Shared Signals receiver:
 * it records every request and answers with `reply`, which a test may swap at any time.
 */
export class Receiver {
  readonly requests: Received[] = [];
  reply: (req: Received) => Reply | Promise<Reply>;
  private readonly hanging = new Set<http.ServerResponse>();

  private constructor(
    private readonly server: http.Server,
    reply: (req: Received) => Reply | Promise<Reply>,
  ) {
    this.reply = reply;
  }

  static async start(reply: (req: Received) => Reply | Promise<Reply> = () => ({ status: 200, body: 'ok' })): Promise<Receiver> {
    const server = http.createServer();
    const receiver = new Receiver(server, reply);
    server.on('request', (req, res) => receiver.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path = '/'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Answers the next requests from a script, then with `then` (default 200). */
  script(replies: Reply[], then: Reply = { status: 200, body: 'ok' }): void {
    const queue = [...replies];
    this.reply = () => queue.shift() ?? then;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', async () => {
      const received: Received = { at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
      this.requests.push(received);
      const reply = await this.reply(received);
      if (reply === 'hang') return void this.hanging.add(res);
      if (reply === 'drop') return void res.socket?.destroy();
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? '');
    });
  }
}
