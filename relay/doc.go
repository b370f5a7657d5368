// Package relay is a Sentry-protocol relay built on package dedup: SDKs of
// any language send to it by changing only their DSN's host, and it forwards
// everything upstream, one event per incident for errors, learning the span
// links across services from the transactions, span items and OTLP traces
// that pass through it.
//
// The command is relay/cmd/tracedup-relay.
package relay
