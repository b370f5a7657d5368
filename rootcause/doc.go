// Package rootcause decides which of the errors captured in one trace is the
// root cause and which are its symptoms.
//
// A [Strategy] sees the errors of one trace as [Error] values and returns the
// index of the root cause. Ready-made strategies are constructors in this
// package; a custom heuristic is one function adapted by [StrategyFunc].
//
// The built-in strategies:
//
//   - [Deepest] follows the span links between the errors: an error whose
//     span is an ancestor of another error's span is a symptom. Among the
//     rest it picks the deepest in the call chain, then the earliest.
//   - [Earliest] picks the earliest error by timestamp.
//   - [NonRootFirst] is the heuristic of the article that started this
//     project: the earliest error not on the trace's root span.
//   - [DemoteTypes] wraps another strategy and passes over the exception
//     types an application knows to be wrappers, such as DownstreamError.
//   - [FirstOf] asks strategies in turn until one has an opinion.
//
// [Default] is [Deepest]. Timestamps come from each service's own clock, and
// the clocks of two hosts disagree by as much as a cascade takes, so a
// strategy that trusts them blames the caller whenever the callee's clock is
// ahead. Deepest reads the order of the cascade from the trace itself and
// uses time only where the links are silent. Where an application has
// wrapper types, DemoteTypes(nil, types...) on top of the default does better
// still, since it also sees through gaps in the links.
//
// Every built-in is safe for concurrent use, does not modify or keep the
// errors, and describes itself through [Describe].
package rootcause
