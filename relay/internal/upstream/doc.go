// Package upstream forwards what the relay accepts to the Sentry it relays
// to, as a well-behaved SDK would: the SDK's own auth, a queue bounded in
// bytes that never blocks its caller, per-category rate limits, and bounded
// retries with backoff.
package upstream
