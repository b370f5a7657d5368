// Package report groups error events read from the Sentry web API by trace,
// picks each trace's root cause with a rootcause.Strategy, and finds the
// issues that only ever appear as symptoms of another.
package report
