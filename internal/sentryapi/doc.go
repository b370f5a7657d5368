// Package sentryapi reads error events from the Sentry web API
// (https://docs.sentry.io/api/), following its cursor pagination and keeping
// within its rate limits, for the post-hoc duplicate report.
package sentryapi
