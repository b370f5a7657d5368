// Package rootcause splits the errors captured in one trace into incidents,
// independent failures, and names the root cause of each.
//
// [Incidents] is the one call: it splits a trace's errors by the causal links
// they carry ([Split] has the exact rule: an error is a symptom only when it
// is known to follow from another) and asks a [Strategy] for the root cause
// of each incident among its members. A strategy that implements [Splitter]
// splits the trace itself. A strategy that panics or answers out of range
// comes back as a *[StrategyError]; it never panics the caller.
//
// A [Strategy] sees errors as [Error] values and returns the index of the
// root cause. Ready-made strategies are constructors in this package; a
// custom heuristic is one function adapted by [StrategyFunc].
//
//   - [Deepest] follows the span links between the errors (across spans
//     without errors where the errors carry their ancestors): an error whose
//     span is an ancestor of another error's span is a symptom. Among the
//     rest it picks the deepest in the call chain, then the earliest.
//   - [Earliest] picks the earliest error by timestamp.
//   - [NonRootFirst] is the heuristic of the article that started this
//     project: the earliest error not on the trace's root span.
//   - [DemoteTypes] wraps another strategy and passes over the exception
//     types an application knows to be wrappers, such as DownstreamError.
//   - [FirstOf] asks strategies in turn until one has an opinion.
//   - [CascadeTypes] is a Splitter: across services, only errors of the
//     types the code wraps a failed call in follow from another service's
//     failure.
//   - [OnePerTrace] is a Splitter that makes one incident of a whole trace,
//     the behaviour before incidents; it hides independent failures.
//
// [Default] is [Deepest]. Timestamps come from each service's own clock, and
// the clocks of two hosts disagree by as much as a cascade takes, so a
// strategy that trusts them blames the caller whenever the callee's clock is
// ahead. Deepest reads the order of the cascade from the trace itself and
// uses time only where the links are silent.
//
// Every built-in is safe for concurrent use, does not modify or keep the
// errors, and describes itself through [Describe].
package rootcause
