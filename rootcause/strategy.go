package rootcause

import (
	"fmt"
	"strings"
	"time"
)

// Strategy picks the root cause among the errors of one trace.
//
// RootCause is called with at least one error, all from the same trace, in
// the order they arrived. It returns an index into errs. It must not keep or
// modify errs. It may be called from several goroutines at once.
type Strategy interface {
	RootCause(errs []Error) int
}

// StrategyFunc adapts a function to a Strategy.
type StrategyFunc func(errs []Error) int

// RootCause returns f(errs).
func (f StrategyFunc) RootCause(errs []Error) int { return f(errs) }

// Describe returns the strategy's Description when it has one, and a generic
// name otherwise. Every strategy in this package has a Description.
func Describe(s Strategy) string {
	if d, ok := s.(interface{ Description() string }); ok {
		return d.Description()
	}
	return fmt.Sprintf("%T", s)
}

// Compile-time checks that every built-in is a Strategy with a Description.
var (
	_ describer = earliest{}
	_ describer = nonRootFirst{}
	_ describer = deepest{}
	_ describer = demoteTypes{}
	_ describer = firstOf{}
)

// describer is what every built-in implements; [Describe] looks for it.
type describer interface {
	Strategy
	Description() string
}

// Default returns the strategy the deduplicator uses when none is given:
// [Deepest]. It is the only built-in that follows the span links between the
// errors of a trace, so it names the right error even when the services'
// clocks disagree, and it falls back to the earliest timestamp where the
// links say nothing.
func Default() Strategy { return deepest{} }

// Earliest returns a strategy that picks the error with the earliest
// Timestamp, the lowest index among equal ones. A zero Timestamp is unknown
// and counts as later than any known one. Timestamps come from each service's
// own clock, so across services Earliest is only as right as the clocks are.
func Earliest() Strategy { return earliest{} }

type earliest struct{}

// RootCause implements [Strategy]. It returns -1 for no errors.
func (earliest) RootCause(errs []Error) int {
	best := -1
	for i := range errs {
		if best < 0 || before(errs[i].Timestamp, errs[best].Timestamp) {
			best = i
		}
	}
	return best
}

// Description returns "Earliest".
func (earliest) Description() string { return "Earliest" }

// NonRootFirst returns the heuristic of the article that started this
// project, kept as a baseline: the earliest error that is not on the trace's
// root span (ParentSpanID != ""), or the earliest error when all of them are
// on the root span. Ties go to the lowest index. It trusts the clocks as
// [Earliest] does.
func NonRootFirst() Strategy { return nonRootFirst{} }

type nonRootFirst struct{}

// RootCause implements [Strategy]. It returns -1 for no errors.
func (nonRootFirst) RootCause(errs []Error) int {
	best := -1
	for i := range errs {
		if errs[i].IsRootSpan() {
			continue
		}
		if best < 0 || before(errs[i].Timestamp, errs[best].Timestamp) {
			best = i
		}
	}
	if best < 0 {
		return earliest{}.RootCause(errs)
	}
	return best
}

// Description returns "NonRootFirst{tie:Earliest}".
func (nonRootFirst) Description() string { return "NonRootFirst{tie:Earliest}" }

// FirstOf returns a strategy that asks each of strategies in turn and returns
// the first answer that is an index into errs. An answer out of range, such
// as -1, means "no opinion": the next strategy is asked. It returns -1 when
// none answers. Nil strategies are skipped.
//
// A strategy that panics is not recovered: the panic propagates to the caller
// of RootCause, and the strategies after it are not asked. The deduplicator
// recovers it there, counts it and sends every event of the trace, so a
// broken strategy is visible rather than hidden behind a fallback.
func FirstOf(strategies ...Strategy) Strategy {
	f := make(firstOf, 0, len(strategies))
	for _, s := range strategies {
		if s != nil {
			f = append(f, s)
		}
	}
	return f
}

type firstOf []Strategy

// RootCause implements [Strategy].
func (f firstOf) RootCause(errs []Error) int {
	for _, s := range f {
		if i := s.RootCause(errs); i >= 0 && i < len(errs) {
			return i
		}
	}
	return -1
}

// Description returns "FirstOf{" followed by the descriptions of the
// strategies, comma-separated, and "}".
func (f firstOf) Description() string {
	var b strings.Builder
	b.WriteString("FirstOf{")
	for i, s := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Describe(s))
	}
	b.WriteByte('}')
	return b.String()
}

// before reports whether a is earlier than b. A zero time is unknown and
// sorts after every known time, so an error without a timestamp never wins on
// time alone.
func before(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return !a.IsZero() && b.IsZero()
	}
	return a.Before(b)
}
