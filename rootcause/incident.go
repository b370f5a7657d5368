package rootcause

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Incident is one independent failure among the errors of a trace: the error
// to report and the errors known to be its symptoms or its repeats.
type Incident struct {
	// Root is the index of the error to report.
	Root int
	// Members are the indexes of the incident's errors, Root among them, in
	// ascending order.
	Members []int
}

// Splitter is an optional interface of a [Strategy] that splits the errors of
// a trace into incidents itself, as an OTel sampler may implement optional
// interfaces beside ShouldSample. [Incidents] uses it when a strategy has it.
//
// Split is called with at least one error, all from the same trace. Every
// index into errs must be in exactly one incident's Members, and each Root
// among its incident's Members. It must not keep or modify errs.
type Splitter interface {
	Split(errs []Error) []Incident
}

// StrategyError is what [Incidents] returns when a strategy panicked or gave
// an answer out of range. Whoever asked should then report every error: a
// broken strategy must not hide one.
type StrategyError struct {
	// Strategy is the strategy's description.
	Strategy string
	// Panic is the value the strategy panicked with, nil if it did not.
	Panic any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
	// Reason says what was wrong with an answer that did not panic.
	Reason string
}

func (e *StrategyError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("rootcause: strategy %s: %s", e.Strategy, e.Reason)
	}
	return fmt.Sprintf("rootcause: strategy %s panicked: %v\n\n%s", e.Strategy, e.Panic, e.Stack)
}

// Incidents splits errs, the errors of one trace, into incidents and names
// the root cause of each. A [Splitter] does both itself. Any other strategy
// gets the split of [Split] and picks the root cause among each incident's
// members, as it would among a whole trace's.
//
// It never panics: a panic in s, an index out of range or incidents that do
// not cover errs exactly once are returned as a *[StrategyError]. It returns
// nil, nil for no errors.
func Incidents(s Strategy, errs []Error) (incidents []Incident, err error) {
	if len(errs) == 0 {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			incidents, err = nil, &StrategyError{Strategy: Describe(s), Panic: r, Stack: debug.Stack()}
		}
	}()
	strategy := s
	switch sp := s.(type) {
	case cascadeTypes:
		incidents, s = split(errs, sp.typesOrNil()), sp.next
	case Splitter:
		incidents = sp.Split(errs)
		if reason := checkCover(incidents, len(errs)); reason != "" {
			return nil, &StrategyError{Strategy: Describe(s), Reason: reason}
		}
		return incidents, nil
	default:
		incidents = Split(errs)
	}
	if reason := nameRoots(s, errs, incidents); reason != "" {
		return nil, &StrategyError{Strategy: Describe(strategy), Reason: reason}
	}
	return incidents, nil
}

// nameRoots asks s for the root cause of each incident of more than one
// error, among its members, and returns why an answer was out of range, or "".
func nameRoots(s Strategy, errs []Error, incidents []Incident) string {
	var sub []Error
	for k := range incidents {
		inc := &incidents[k]
		if len(inc.Members) == 1 {
			continue
		}
		sub = sub[:0]
		for _, i := range inc.Members {
			sub = append(sub, errs[i])
		}
		pick := s.RootCause(sub)
		if pick < 0 || pick >= len(sub) {
			return fmt.Sprintf("RootCause returned %d for %d errors", pick, len(sub))
		}
		inc.Root = inc.Members[pick]
	}
	return ""
}

// checkCover returns why incidents do not split n errors, or "".
func checkCover(incidents []Incident, n int) string {
	seen := make([]bool, n)
	covered := 0
	for _, inc := range incidents {
		if !slices.Contains(inc.Members, inc.Root) {
			return fmt.Sprintf("Split named root %d outside its incident", inc.Root)
		}
		for _, i := range inc.Members {
			if i < 0 || i >= n || seen[i] {
				return fmt.Sprintf("Split listed error %d twice or out of range", i)
			}
			seen[i] = true
			covered++
		}
	}
	if covered != n {
		return fmt.Sprintf("Split left %d of %d errors out", n-covered, n)
	}
	return ""
}

// Split groups the errors of one trace into incidents by what is known of
// their causes, and only by that: an error whose cause is unknown is an
// incident of its own. Each Root is the earliest of the incident's errors
// that no other of its errors explains.
//
// Error A explains error B, B being a symptom of A, when B was captured on a
// span that encloses A's span: B's SpanID is among A's ancestors. A's
// ancestors are its [Error.Ancestors] (or its ParentSpanID where those are
// unknown), followed on through the ancestors of every error captured on one
// of them. When both errors come from the same service and B was captured
// before A, A cannot explain it: one service's errors share a clock, and a
// symptom does not precede its cause. Where B carries LastChild (the span
// processor recorded it: the child of B's span that started last), A
// explains B only when its failure came up through that child: a span that
// went on to start another child after the one A is in (a retry that
// succeeded, a later step) had carried on past A's failure, and B is its
// own. A child still running counts: a call whose response body is still
// open when its caller captures. Errors on the same span explain nothing of each
// other.
//
// Two errors are repeats, one incident, when they come from the same service
// with the same exception type (the same message where neither has a type),
// as a retried call that fails each time.
//
// An incident is a group of repeats that nothing explains, with every error
// they explain, directly or through its other errors. An error that several
// incidents explain joins the one that began first. The split does not
// depend on the order errs are in, nor does each Root (the group's first
// error by timestamp, then event id). Errors that only explain each other, as
// bad data in a cycle can, become incidents of their own.
//
// Links between processes are not known here: a span's chain ends at the
// service's boundary. Package dedup learns them per call, through the
// acknowledgement its adapters carry.
func Split(errs []Error) []Incident { return split(errs, nil) }

// split is Split; where cascadeTypes is not nil, an error is a symptom of
// another service's error only when it is of one of cascadeTypes.
func split(errs []Error, cascadeTypes []string) []Incident {
	rule := Rule{CascadeTypes: cascadeTypes}
	n := len(errs)
	if n == 0 {
		return nil
	}
	if n == 1 {
		return []Incident{{Root: 0, Members: []int{0}}}
	}
	// Only an error whose span is on some error's chain can be explained:
	// where none is (siblings, repeats, a storm on one span), no link needs
	// to be followed at all.
	onChain := make(map[string]bool)
	for i := range errs {
		for _, id := range chainOf(&errs[i]) {
			onChain[id] = true
		}
	}
	candidate := make([]bool, n)
	linked := false
	for i := range errs {
		if id := errs[i].SpanID; id != "" && onChain[id] {
			candidate[i], linked = true, true
		}
	}
	var enclosing []map[string]struct{}
	if linked {
		enclosing = enclosingSpans(errs)
	}
	explains := func(a, b int) bool {
		eb, ea := &errs[b], &errs[a]
		if !candidate[b] || eb.SpanID == ea.SpanID {
			return false
		}
		if _, ok := enclosing[a][eb.SpanID]; !ok {
			return false
		}
		if ea.Service == eb.Service && !ea.Timestamp.IsZero() && eb.Timestamp.Before(ea.Timestamp) {
			return false
		}
		if ea.Service != eb.Service && !rule.Cascades(eb) {
			return false
		}
		return eb.LastChild == "" || throughLastChild(ea, eb)
	}

	explained := make([]bool, n)
	for b := range n {
		for a := range n {
			if a != b && explains(a, b) {
				explained[b] = true
				break
			}
		}
	}

	incidentOf := make([]int, n)
	for i := range incidentOf {
		incidentOf[i] = -1
	}
	var incidents []Incident
	var began []time.Time // per incident, its earliest root's timestamp
	// The roots, grouped by repeat key in order of first appearance. Each
	// group's Root is its first error by (timestamp, event id, span id),
	// not by arrival.
	byKey := make(map[repeatKey]int)
	for i := range n {
		if explained[i] {
			continue
		}
		k := keyOf(&errs[i])
		inc, ok := byKey[k]
		switch {
		case !ok:
			inc = len(incidents)
			byKey[k] = inc
			incidents = append(incidents, Incident{Root: i})
			began = append(began, errs[i].Timestamp)
		case precedes(&errs[i], &errs[incidents[inc].Root]):
			incidents[inc].Root = i
			began[inc] = errs[i].Timestamp
		}
		incidentOf[i] = inc
	}
	// Symptoms join an incident whose errors explain them, directly or
	// through other symptoms. Of several, the one that began first: the
	// earliest failure is the likeliest cause. Every incident's reach is
	// found before any symptom joins, so that the answer does not depend on
	// the order the errors arrived in.
	reach := make([][]int, n) // per symptom, the incidents that reach it
	var queue []int
	seen := make([]bool, n)
	for k := range incidents {
		clear(seen)
		queue = queue[:0]
		for a := range n {
			if incidentOf[a] == k {
				queue = append(queue, a)
			}
		}
		for len(queue) > 0 {
			a := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			for b := range n {
				if incidentOf[b] < 0 && !seen[b] && explains(a, b) {
					seen[b] = true
					reach[b] = append(reach[b], k)
					queue = append(queue, b)
				}
			}
		}
	}
	for b, ks := range reach {
		best := -1
		for _, k := range ks {
			if best < 0 || before(began[k], began[best]) ||
				!before(began[best], began[k]) && precedes(&errs[incidents[k].Root], &errs[incidents[best].Root]) {
				best = k
			}
		}
		if best >= 0 {
			incidentOf[b] = best
		}
	}
	for i := range n {
		if incidentOf[i] < 0 {
			incidentOf[i] = len(incidents)
			incidents = append(incidents, Incident{Root: i})
		}
	}
	for i, inc := range incidentOf {
		incidents[inc].Members = append(incidents[inc].Members, i)
	}
	return incidents
}

// Follows reports whether b is known to follow from a by the rule of Split,
// looking at the two alone, not through other errors: b was captured on a
// span enclosing a's span, not earlier than a where they share a service
// (and so a clock), and, where b carries LastChild, a's failure came up
// through that child. Where Follows holds on well-formed span data, Split
// never makes b a root cause: it is a symptom of a's incident or of another
// that explains it. On malformed data where two errors' chains hold each
// other's spans (a cycle), Split makes both incidents of their own: it
// fails the safe way, with an extra report.
func Follows(b, a Error) bool { return Rule{}.Follows(&b, &a) }

// Rule is the one rule by which an error is known to follow from another:
// [Split]'s, and the one package dedup asks when an error arrives and when
// a downstream service acknowledged a call. The zero Rule is Split's. With
// CascadeTypes, an error of one service follows from another service's
// error only when its exception type is one of them (as [CascadeTypes]).
type Rule struct {
	// CascadeTypes are the types the code wraps a failed call in; none
	// means any type.
	CascadeTypes []string
}

// Follows is [Follows] under r.
func (r Rule) Follows(b, a *Error) bool {
	if !Encloses(b, a) {
		return false
	}
	if a.Service == b.Service && !a.Timestamp.IsZero() && b.Timestamp.Before(a.Timestamp) {
		return false
	}
	if a.Service != b.Service && !r.Cascades(b) {
		return false
	}
	return b.LastChild == "" || throughLastChild(a, b)
}

// Cascades reports whether b may follow from another service's failure:
// always without CascadeTypes, else when b is of one of them.
func (r Rule) Cascades(b *Error) bool {
	return len(r.CascadeTypes) == 0 || b.IsType(r.CascadeTypes...)
}

// Encloses reports whether b was captured on a span known to enclose a's
// span in a's process: b's span is on a's chain of ancestors (or is its
// parent where the ancestors are unknown).
func Encloses(b, a *Error) bool {
	return b.SpanID != "" && b.SpanID != a.SpanID && slices.Contains(chainOf(a), b.SpanID)
}

// Repeats reports whether b repeats a, the two being one incident when
// nothing explains them: the same service and exception type (the same
// message where neither has a type), as a retried call failing each time.
func Repeats(b, a *Error) bool { return keyOf(b) == keyOf(a) }

// precedes orders errors independently of their arrival: by timestamp (a
// known one first), then event id, then span id.
func precedes(a, b *Error) bool {
	if before(a.Timestamp, b.Timestamp) || before(b.Timestamp, a.Timestamp) {
		return before(a.Timestamp, b.Timestamp)
	}
	if a.EventID != b.EventID {
		return a.EventID < b.EventID
	}
	return a.SpanID < b.SpanID
}

// throughLastChild reports whether a's failure reached b's span through the
// child of b's span that started last before b was captured: otherwise b's
// span had carried on past it (a retry that succeeded, another step) and b
// is not known to follow from a. Where b's span is not on a's own chain of
// ancestors (the link runs through other errors), that is not known either.
func throughLastChild(a, b *Error) bool {
	if a.ParentSpanID == b.SpanID {
		return a.SpanID == b.LastChild
	}
	for i, id := range a.Ancestors {
		if id == b.SpanID {
			if i == 0 {
				return a.SpanID == b.LastChild
			}
			return a.Ancestors[i-1] == b.LastChild
		}
	}
	return false
}

// repeatKey says which errors are repeats of each other.
type repeatKey struct{ service, kind, text string }

func keyOf(e *Error) repeatKey {
	if e.ExceptionType != "" {
		return repeatKey{service: e.Service, kind: e.ExceptionType}
	}
	return repeatKey{service: e.Service, text: e.Message}
}

// enclosingSpans returns, for each error, the set of span ids known to
// enclose its span: its own chain, and the chain of every error captured on
// a span of that chain, transitively.
func enclosingSpans(errs []Error) []map[string]struct{} {
	bySpan := make(map[string][]int, len(errs))
	for i := range errs {
		if id := errs[i].SpanID; id != "" {
			bySpan[id] = append(bySpan[id], i)
		}
	}
	sets := make([]map[string]struct{}, len(errs))
	var queue []string
	for i := range errs {
		set := make(map[string]struct{})
		queue = append(queue[:0], chainOf(&errs[i])...)
		for len(queue) > 0 {
			id := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			if _, seen := set[id]; seen || id == "" {
				continue
			}
			set[id] = struct{}{}
			for _, j := range bySpan[id] {
				queue = append(queue, chainOf(&errs[j])...)
			}
		}
		sets[i] = set
	}
	return sets
}

// chainOf returns the ids known to enclose e's span in its process.
func chainOf(e *Error) []string {
	if len(e.Ancestors) > 0 {
		return e.Ancestors
	}
	if e.ParentSpanID != "" {
		return []string{e.ParentSpanID}
	}
	return nil
}

// OnePerTrace returns a [Splitter] that makes one incident of every trace
// and lets s pick its root cause: the behaviour of tracedup before incidents,
// and of the article that started it. It sends one event per trace, so it
// hides every independent failure beside the first; use it only where
// fewer alerts matter more than seeing each failure.
func OnePerTrace(s Strategy) Strategy {
	if s == nil {
		s = Default()
	}
	return onePerTrace{s}
}

type onePerTrace struct{ s Strategy }

// RootCause implements [Strategy]: s's answer.
func (o onePerTrace) RootCause(errs []Error) int { return o.s.RootCause(errs) }

// Split implements [Splitter]: one incident of all errs, rooted where s says.
func (o onePerTrace) Split(errs []Error) []Incident {
	members := make([]int, len(errs))
	for i := range members {
		members[i] = i
	}
	return []Incident{{Root: o.s.RootCause(errs), Members: members}}
}

// Description returns "OnePerTrace{" + s's description + "}".
func (o onePerTrace) Description() string { return "OnePerTrace{" + Describe(o.s) + "}" }

// CascadeTypes returns a [Splitter] that splits a trace as [Split] does,
// except that an error of one service is a symptom of another service's
// error only when its exception type is one of types (matched as
// [DemoteTypes] matches them): the types the code wraps a failed call in,
// such as a gateway's DownstreamError. Any other error of the caller, such
// as its own bug after it degraded gracefully, is an incident of its own.
// next names the root cause of each incident; nil means [Default]. Without
// types it splits as Split does.
func CascadeTypes(next Strategy, types ...string) Strategy {
	if next == nil {
		next = Default()
	}
	return cascadeTypes{next: next, types: slices.Clone(types)}
}

type cascadeTypes struct {
	next  Strategy
	types []string
}

// RootCause implements [Strategy]: next's answer.
func (c cascadeTypes) RootCause(errs []Error) int { return c.next.RootCause(errs) }

// Split implements [Splitter]. A root cause next names out of range is
// left at -1, which [Incidents] reports as a broken strategy.
func (c cascadeTypes) Split(errs []Error) []Incident {
	incidents := split(errs, c.typesOrNil())
	if nameRoots(c.next, errs, incidents) != "" {
		for k := range incidents {
			incidents[k].Root = -1
		}
	}
	return incidents
}

// typesOrNil returns the types, nil when there are none: then the split is
// Split's.
func (c cascadeTypes) typesOrNil() []string {
	if len(c.types) == 0 {
		return nil
	}
	return c.types
}

// Description returns "CascadeTypes{" followed by the types, comma-separated,
// "}->" and next's description.
func (c cascadeTypes) Description() string {
	return "CascadeTypes{" + strings.Join(c.types, ",") + "}->" + Describe(c.next)
}
