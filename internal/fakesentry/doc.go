// Package fakesentry is an in-process Sentry ingestion endpoint for demos and
// tests; it is not meant for production.
//
// A [Server] listens on a loopback port and accepts the envelopes that
// sentry-go's HTTP transports send to a DSN. It keeps every error event, both
// decoded into a [sentry.Event] and as the raw JSON that travelled on the
// wire, so that demos run without a Sentry account and end-to-end tests can
// assert on the exact wire format. [Server.WaitFor] lets a test wait for
// events without sleeping or polling.
//
// The server checks what a real Sentry checks about the request (path,
// method, sentry_key, Content-Encoding, envelope framing) and answers
// malformed requests with a 4xx status that it counts in [Stats]; it never
// panics on foreign input.
package fakesentry
