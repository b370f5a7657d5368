package rootcause_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/rootcause"
)

// within returns err with the chain of spans enclosing its span, as
// sentryotel's span processor stamps it: nearest first, from the parent.
func within(err rootcause.Error, ancestors ...string) rootcause.Error {
	err.Ancestors = ancestors
	if len(ancestors) > 0 {
		err.ParentSpanID = ancestors[0]
	}
	return err
}

// describe renders incidents as "root<members" with the members' event ids
// in index order, one per incident, sorted: "D<D,H" is an incident whose root
// is D and whose members are D and H.
func describe(errs []rootcause.Error, incidents []rootcause.Incident) []string {
	out := make([]string, 0, len(incidents))
	for _, inc := range incidents {
		ids := make([]string, len(inc.Members))
		for k, i := range inc.Members {
			ids[k] = errs[i].EventID
		}
		slices.Sort(ids)
		out = append(out, errs[inc.Root].EventID+"<"+strings.Join(ids, ","))
	}
	slices.Sort(out)
	return out
}

// The scenarios of one process: a handler's span h (its server span), a
// step x inside it, a query q inside x, client spans c1, c2 of calls made
// from h, goroutine spans s1, s2 of h. ms is a millisecond.
const ms = time.Millisecond

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		errs []rootcause.Error
		want []string
	}{{
		name: "a symptom on an enclosing span, linked by the ancestry across a span without an error",
		errs: []rootcause.Error{
			typed(within(e("H", "h", "", 20*ms)), "checkout", "*main.HandlerError"),
			typed(within(e("D", "q", "", 10*ms), "x", "h"), "checkout", "*pq.Error"),
		},
		want: []string{"D<D,H"},
	}, {
		name: "the same without the ancestry: nothing links them, both are sent",
		errs: []rootcause.Error{
			typed(e("H", "h", "", 20*ms), "checkout", "*main.HandlerError"),
			typed(e("D", "q", "x", 10*ms), "checkout", "*pq.Error"),
		},
		want: []string{"D<D", "H<H"},
	}, {
		name: "without the ancestry, links through spans that carry errors still count",
		errs: []rootcause.Error{
			typed(e("H", "h", "", 30*ms), "checkout", "*main.HandlerError"),
			typed(e("X", "x", "h", 20*ms), "checkout", "*main.StepError"),
			typed(e("D", "q", "x", 10*ms), "checkout", "*pq.Error"),
		},
		want: []string{"D<D,H,X"},
	}, {
		name: "two failures on sibling goroutines, and the handler's error after both",
		errs: []rootcause.Error{
			typed(within(e("S1", "s1", "", 10*ms), "h"), "checkout", "*main.StockError"),
			typed(within(e("S2", "s2", "", 11*ms), "h"), "checkout", "*main.PriceError"),
			typed(within(e("H", "h", "", 20*ms)), "checkout", "*main.HandlerError"),
		},
		want: []string{"S1<H,S1", "S2<S2"}, // H joins the incident that began first
	}, {
		name: "two errors of different types on one span explain nothing of each other",
		errs: []rootcause.Error{
			typed(within(e("A", "h", "", 10*ms)), "checkout", "*main.A"),
			typed(within(e("B", "h", "", 20*ms)), "checkout", "*main.B"),
		},
		want: []string{"A<A", "B<B"},
	}, {
		name: "repeats of one origin: a retried call failing each time is one incident",
		errs: []rootcause.Error{
			typed(within(e("P1", "p1", "", 10*ms), "c1"), "payment", "*main.Timeout"),
			typed(within(e("P2", "p2", "", 20*ms), "c2"), "payment", "*main.Timeout"),
			typed(within(e("P3", "p3", "", 30*ms), "c3"), "payment", "*main.Timeout"),
		},
		want: []string{"P1<P1,P2,P3"},
	}, {
		name: "two independent failures of one service in one trace",
		errs: []rootcause.Error{
			typed(within(e("P1", "p1", "", 10*ms), "c1"), "payment", "*main.Timeout"),
			typed(within(e("P2", "p2", "", 20*ms), "c2"), "payment", "*main.CardDeclined"),
		},
		want: []string{"P1<P1", "P2<P2"},
	}, {
		name: "repeats by message where there is no exception type",
		errs: []rootcause.Error{
			{EventID: "M1", SpanID: "p1", Service: "payment", Message: "timeout"},
			{EventID: "M2", SpanID: "p2", Service: "payment", Message: "timeout"},
			{EventID: "M3", SpanID: "p3", Service: "payment", Message: "declined"},
		},
		want: []string{"M1<M1,M2", "M3<M3"},
	}, {
		name: "an enclosing span's error captured before its descendant's is not its symptom",
		errs: []rootcause.Error{
			typed(within(e("H", "h", "", 10*ms)), "checkout", "*main.OwnBug"),
			typed(within(e("D", "q", "", 20*ms), "x", "h"), "checkout", "*pq.Error"),
		},
		want: []string{"D<D", "H<H"},
	}, {
		name: "across services the clocks say nothing: the links decide, with payment two seconds ahead",
		errs: article(true, 2*time.Second),
		want: []string{"payment<gateway,order,payment"},
	}, {
		name: "across a client span with no error, without the ancestry, nothing is known",
		errs: article(false, 0),
		want: []string{"gateway<gateway", "order<order", "payment<payment"},
	}, {
		name: "a cycle of bad links hides nothing",
		errs: []rootcause.Error{
			typed(e("A", "a", "b", 10*ms), "order", "*main.A"),
			typed(e("B", "b", "a", 20*ms), "payment", "*main.B"),
		},
		want: []string{"A<A", "B<B"},
	}, {
		name: "errors with no span are independent",
		errs: []rootcause.Error{
			typed(e("A", "", "", 10*ms), "s", "*main.A"),
			typed(e("B", "", "", 20*ms), "s", "*main.B"),
		},
		want: []string{"A<A", "B<B"},
	}, {
		// With the span processor an error knows which child of its span
		// started last, and a failure in an earlier child does not explain it.
		name: "the handler failed right after the call that failed: a symptom",
		errs: []rootcause.Error{
			typed(within(e("P", "p", "", 10*ms), "c1", "h"), "payment", "*main.PaymentDeclined"),
			typed(last(within(e("H", "h", "", 20*ms)), "c1"), "gateway", "*main.CallFailed"),
		},
		want: []string{"P<H,P"},
	}, {
		name: "a retry that succeeded, then the handler's own bug: two incidents",
		errs: []rootcause.Error{
			typed(within(e("P", "p", "", 10*ms), "c1", "h"), "payment", "*main.PaymentDeclined"),
			typed(last(within(e("H", "h", "", 20*ms)), "c2"), "gateway", "runtime.Error"),
		},
		want: []string{"H<H", "P<P"},
	}, {
		name: "a deep failure came up through the last step: a symptom",
		errs: []rootcause.Error{
			typed(within(e("D", "q", "", 10*ms), "x", "h"), "checkout", "*pq.Error"),
			typed(last(within(e("H", "h", "", 20*ms)), "x"), "checkout", "*main.HandlerError"),
		},
		want: []string{"D<D,H"},
	}, {
		name: "the handler had started no child when it failed: not a symptom",
		errs: []rootcause.Error{
			typed(within(e("D", "q", "", 10*ms), "x", "h"), "checkout", "*pq.Error"),
			typed(last(within(e("H", "h", "", 20*ms)), rootcause.NoChild), "checkout", "*main.HandlerError"),
		},
		want: []string{"D<D", "H<H"},
	}, {
		name: "without ancestors, through the error on the last child: a symptom of its incident",
		errs: []rootcause.Error{
			typed(e("D", "q", "x", 10*ms), "checkout", "*pq.Error"),
			typed(e("X", "x", "h", 15*ms), "checkout", "*main.StepError"),
			typed(last(e("H", "h", "", 20*ms), "x"), "checkout", "*main.HandlerError"),
		},
		want: []string{"D<D,H,X"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rootcause.Incidents(rootcause.Default(), tt.errs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, describe(tt.errs, got))
			assertCover(t, got, len(tt.errs))
		})
	}
}

// last returns err with the id of its span's child that ended last.
func last(err rootcause.Error, child string) rootcause.Error {
	err.LastChild = child
	return err
}

// assertCover checks that incidents hold every index once, each Root among
// its Members.
func assertCover(t *testing.T, incidents []rootcause.Incident, n int) {
	t.Helper()
	var all []int
	for _, inc := range incidents {
		assert.Contains(t, inc.Members, inc.Root)
		assert.True(t, slices.IsSorted(inc.Members), "members in order: %v", inc.Members)
		all = append(all, inc.Members...)
	}
	slices.Sort(all)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, all, "every error in exactly one incident")
}

// TestSplitEveryArrivalOrder feeds one trace's errors in every order: the
// incidents and their root causes must not depend on it.
func TestSplitEveryArrivalOrder(t *testing.T) {
	errs := []rootcause.Error{
		typed(within(e("H", "h", "", 40*ms)), "checkout", "*main.HandlerError"),
		typed(within(e("S1", "s1", "", 10*ms), "h"), "checkout", "*main.StockError"),
		typed(within(e("Q", "q", "", 5*ms), "s1", "h"), "checkout", "*pq.Error"),
		typed(within(e("S2", "s2", "", 30*ms), "h"), "checkout", "*main.PriceError"),
		typed(within(e("R1", "r1", "", 20*ms), "s2", "h"), "checkout", "*main.Retry"),
		typed(within(e("R2", "r2", "", 25*ms), "s2", "h"), "checkout", "*main.Retry"),
	}
	want := []string{"Q<H,Q,S1", "R1<R1,R2,S2"}
	n := 0
	for _, perm := range permutations(len(errs)) {
		shuffled := make([]rootcause.Error, len(errs))
		for i, j := range perm {
			shuffled[i] = errs[j]
		}
		got, err := rootcause.Incidents(rootcause.Default(), shuffled)
		require.NoError(t, err)
		require.Equal(t, want, describe(shuffled, got), "order %v", perm)
		n++
	}
	assert.Equal(t, 720, n)
}

func TestIncidentsUsesTheStrategyWithinEachIncident(t *testing.T) {
	errs := []rootcause.Error{
		typed(within(e("H", "h", "", 20*ms)), "checkout", "*main.HandlerError"),
		typed(within(e("D", "q", "", 10*ms), "x", "h"), "checkout", "*pq.Error"),
		typed(within(e("S", "s", "", 15*ms), "h"), "checkout", "*main.Other"),
	}
	// A strategy that always names the first error of what it is given.
	first := rootcause.StrategyFunc(func([]rootcause.Error) int { return 0 })
	got, err := rootcause.Incidents(first, errs)
	require.NoError(t, err)
	assert.Equal(t, []string{"H<D,H", "S<S"}, describe(errs, got))
}

func TestIncidentsReportsABrokenStrategy(t *testing.T) {
	errs := []rootcause.Error{
		typed(within(e("H", "h", "", 20*ms)), "checkout", "*main.HandlerError"),
		typed(within(e("D", "q", "", 10*ms), "h"), "checkout", "*pq.Error"),
	}
	boom := errors.New("boom")
	tests := map[string]struct {
		s    rootcause.Strategy
		want string
	}{
		"index out of range": {rootcause.StrategyFunc(func([]rootcause.Error) int { return 2 }), "RootCause returned 2 for 2 errors"},
		"no opinion":         {rootcause.FirstOf(), "RootCause returned -1 for 2 errors"},
		"panic":              {rootcause.StrategyFunc(func([]rootcause.Error) int { panic(boom) }), "panicked: boom"},
		"splitter leaves one out": {splitter(func(errs []rootcause.Error) []rootcause.Incident {
			return []rootcause.Incident{{Root: 0, Members: []int{0}}}
		}), "left 1 of 2 errors out"},
		"splitter lists one twice": {splitter(func(errs []rootcause.Error) []rootcause.Incident {
			return []rootcause.Incident{{Root: 0, Members: []int{0, 1}}, {Root: 1, Members: []int{1}}}
		}), "listed error 1 twice"},
		"splitter roots outside": {splitter(func(errs []rootcause.Error) []rootcause.Incident {
			return []rootcause.Incident{{Root: 1, Members: []int{0}}, {Root: 1, Members: []int{1}}}
		}), "root 1 outside its incident"},
		"splitter out of range": {splitter(func(errs []rootcause.Error) []rootcause.Incident {
			return []rootcause.Incident{{Root: 5, Members: []int{0, 1, 5}}}
		}), "out of range"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := rootcause.Incidents(tt.s, errs)
			assert.Nil(t, got)
			var se *rootcause.StrategyError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, err.Error(), tt.want)
			if name == "panic" {
				assert.Equal(t, boom, se.Panic, "the panic's value is kept")
				assert.Contains(t, string(se.Stack), "incident_test.go", "and where it happened")
			}
		})
	}
}

// splitter adapts a function to a Splitter strategy.
type splitter func(errs []rootcause.Error) []rootcause.Incident

func (s splitter) RootCause([]rootcause.Error) int                   { return 0 }
func (s splitter) Split(errs []rootcause.Error) []rootcause.Incident { return s(errs) }

func TestOnePerTrace(t *testing.T) {
	errs := []rootcause.Error{
		typed(within(e("A", "s1", "", 20*ms), "h"), "checkout", "*main.A"),
		typed(within(e("B", "s2", "", 10*ms), "h"), "checkout", "*main.B"),
	}
	s := rootcause.OnePerTrace(rootcause.Earliest())
	got, err := rootcause.Incidents(s, errs)
	require.NoError(t, err)
	assert.Equal(t, []string{"B<A,B"}, describe(errs, got), "independent failures made one")
	assert.Equal(t, "OnePerTrace{Earliest}", rootcause.Describe(s))
	assert.Equal(t, "OnePerTrace{Deepest{tie:Earliest}}", rootcause.Describe(rootcause.OnePerTrace(nil)))
	assert.Equal(t, 1, s.RootCause(errs))
}

func TestIncidentsOfNothing(t *testing.T) {
	got, err := rootcause.Incidents(rootcause.Default(), nil)
	assert.NoError(t, err)
	assert.Nil(t, got)
	assert.Nil(t, rootcause.Split(nil))
}

// TestCascadeTypes: across services, only errors of the types the code
// wraps a failed call in follow from the failure; within a service the rule
// is Split's.
func TestCascadeTypes(t *testing.T) {
	errs := []rootcause.Error{
		typed(within(e("P", "p", "", 10*ms), "c1", "g"), "payment", "*main.PaymentDeclined"),
		typed(within(e("W", "g", "", 20*ms)), "gateway", "*main.DownstreamError"),
		typed(within(e("B", "g", "", 30*ms)), "gateway", "runtime.Error"),
		typed(within(e("Q", "q", "", 5*ms), "p"), "payment", "*pq.Error"),
	}
	s := rootcause.CascadeTypes(nil, "DownstreamError")
	got, err := rootcause.Incidents(s, errs)
	require.NoError(t, err)
	assert.Equal(t, []string{"B<B", "Q<P,Q,W"}, describe(errs, got),
		"the gateway's own bug is its own incident; payment's in-service symptom and the wrapper follow")
	assert.Equal(t, describe(errs, got), describe(errs, s.(rootcause.Splitter).Split(errs)))
	assert.Equal(t, "CascadeTypes{DownstreamError}->Deepest{tie:Earliest}", rootcause.Describe(s))

	got, err = rootcause.Incidents(rootcause.Default(), errs)
	require.NoError(t, err)
	assert.Equal(t, []string{"Q<B,P,Q,W"}, describe(errs, got), "without the types every enclosing error follows")

	got, err = rootcause.Incidents(rootcause.CascadeTypes(nil), errs)
	require.NoError(t, err)
	assert.Equal(t, []string{"Q<B,P,Q,W"}, describe(errs, got), "no types: Split's rule")

	_, err = rootcause.Incidents(rootcause.CascadeTypes(rootcause.FirstOf(), "DownstreamError"), errs)
	var se *rootcause.StrategyError
	assert.ErrorAs(t, err, &se, "a next without an answer is a broken strategy")
}
