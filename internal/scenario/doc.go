// Package scenario is the incident model's scenarios, shared by the tests of
// every wiring of tracedup: small systems of real services on loopback that
// know their independent failures (origins), run under a Wiring that says
// how the services report to Sentry (each its own deduplicator and the
// acknowledgement, or a relay), with what must reach Sentry and the recall
// and precision that follow.
package scenario
