// Package workload generates seeded, reproducible request loads over a
// service call graph, drives them through real Sentry clients and HTTP
// handlers, and scores what reached Sentry against the load's ground truth.
//
// It knows nothing of tracedup: what a service runs to report (a hook, a
// deduplicating transport, middleware) comes in through [Wiring], and the
// ground truth of each captured event rides on the event in the context
// [ContextKey], where strategies do not look.
package workload
