// payment is the deepest service of the relay's end-to-end test: a Node
// HTTP server with @sentry/node's tracing on, which fails every request it
// serves and captures the error inside that request. It sends to the DSN in
// SENTRY_DSN, listens on 127.0.0.1:PORT (0 picks a free port), and prints
// "payment: listening on PORT" on stdout once it accepts connections. On
// SIGTERM or SIGINT it flushes what the SDK holds and exits 0.
'use strict';

const Sentry = require('@sentry/node');

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  serverName: 'payment',
  // The tag the relay names a service by, as tracedup's Go hook stamps it.
  initialScope: { tags: { 'service.name': 'payment' } },
  tracesSampleRate: 1,
  // The SDK's Dedupe integration drops an error identical to the one
  // before it, so that after the first failed request order's error would
  // be the deepest one the relay sees; the test wants one Node error for
  // each failed request, as a service with varied errors sends.
  integrations: (defaults) => defaults.filter((i) => i.name !== 'Dedupe'),
});

const http = require('node:http');

class CardDeclinedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CardDeclinedError';
  }
}

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    Sentry.captureException(new CardDeclinedError('card declined'));
    res.writeHead(402, { 'Content-Type': 'text/plain' });
    res.end('card declined\n');
  });
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`payment: listening on ${server.address().port}`);
});

async function stop() {
  server.close();
  await Sentry.close(5000);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
