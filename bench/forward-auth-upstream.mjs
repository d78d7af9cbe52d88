// The tiny upstream of `npm run bench:forward-auth`: a node:http service that answers every
// request with the identity nginx forwarded (as a service behind the guard would read it).
// With the argument `noop-auth` it is instead an auth endpoint that allows everything at once
// (200, empty): the cost of the extra hop alone, without a decision. Its own process, as a real
// service is. Prints `listening <port>` once it listens.
import { createServer } from 'node:http';

const noop = process.argv[2] === 'noop-auth';
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if (noop) {
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
    return;
  }
  const body = `{"subject":${JSON.stringify(req.headers['x-auth-subject'] ?? null)}}`;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
