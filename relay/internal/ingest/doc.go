// Package ingest is the relay's front door: an http.Handler that speaks
// Sentry's ingest protocol as Sentry's Relay does, gives error events to a
// Sink, tells it the spans it reads from transactions, span items and OTLP
// traces, and forwards everything else upstream at once.
package ingest
