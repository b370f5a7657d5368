// Package rootcause decides which of the errors captured in one trace is the
// root cause and which are its symptoms.
//
// A [Strategy] sees the errors of one trace as [Error] values and returns the
// index of the root cause. Ready-made strategies are constructors in this
// package; a custom heuristic is one function adapted by [StrategyFunc].
package rootcause
