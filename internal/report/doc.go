// Package report groups error events read after the fact (from the Sentry web
// API) by trace, splits each trace into incidents with a root cause picked by
// a rootcause.Strategy, and finds the issues that only ever appear as symptoms
// of another.
package report
