package rootcause_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/ancestry"
	"github.com/tracedup/tracedup/rootcause"
)

// randomErrors builds n errors over a small alphabet of span ids, with
// malformed and duplicate ids, cycles, nil events and identical event ids.
func randomErrors(r *rand.Rand, n int) []rootcause.Error {
	ids := []string{"", "a", "b", "c", "d", "e", "0000000000000000", "not-hex!", strings.Repeat("f", 40)}
	id := func() string { return ids[r.IntN(len(ids))] }
	errs := make([]rootcause.Error, n)
	for i := range errs {
		e := rootcause.Error{
			EventID:      "same", // identical EventIDs
			TraceID:      "t",
			SpanID:       id(),
			ParentSpanID: id(),
			Service:      []string{"", "s1", "s2"}[r.IntN(3)],
			Timestamp:    t0.Add(time.Duration(r.IntN(5)) * time.Millisecond),
		}
		if r.IntN(2) == 0 {
			e.ExceptionType = []string{"E1", "E2"}[r.IntN(2)]
		}
		for range r.IntN(4) {
			e.Ancestors = append(e.Ancestors, id())
		}
		switch r.IntN(4) {
		case 0:
			e.LastChild = id()
		case 1:
			e.LastChild = rootcause.SpanEnded
		case 2:
			e.LastChild = rootcause.NoChild
		}
		if r.IntN(3) == 0 {
			e.Timestamp = time.Time{}
		}
		errs[i] = e // Event nil throughout
	}
	return errs
}

// partition returns incidents as sorted sets of error identities.
func partition(incidents []rootcause.Incident, ident []int) []string {
	var out []string
	for _, inc := range incidents {
		var m []int
		for _, i := range inc.Members {
			m = append(m, ident[i])
		}
		slices.Sort(m)
		out = append(out, fmt.Sprint(m))
	}
	sort.Strings(out)
	return out
}

// Built-in strategies never fail on bad data (a failure sends every event:
// no loss, but a strategy bug), cover every error exactly once, and never
// dereference a nil Event.
func TestProbeIncidentsOnBadData(t *testing.T) {
	strategies := []rootcause.Strategy{
		rootcause.Default(), rootcause.Earliest(), rootcause.NonRootFirst(),
		rootcause.DemoteTypes(rootcause.Default(), "E1"),
		rootcause.FirstOf(rootcause.NonRootFirst(), rootcause.Earliest()),
		rootcause.OnePerTrace(nil),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 3000 {
		errs := randomErrors(r, 1+r.IntN(12))
		for _, s := range strategies {
			incidents, err := rootcause.Incidents(s, errs)
			require.NoError(t, err, "round %d, %s: %+v", round, rootcause.Describe(s), errs)
			seen := make([]int, len(errs))
			for _, inc := range incidents {
				require.Contains(t, inc.Members, inc.Root)
				require.True(t, slices.IsSorted(inc.Members), "members ascending")
				for _, i := range inc.Members {
					seen[i]++
				}
			}
			for i, k := range seen {
				require.Equal(t, 1, k, "round %d: error %d in %d incidents", round, i, k)
			}
		}
	}
}

// The split must not depend on the order errors arrived in, where their
// timestamps are distinct.
func TestProbeSplitIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 3000 {
		errs := randomErrors(r, 2+r.IntN(8))
		for i := range errs {
			errs[i].Timestamp = t0.Add(time.Duration(i) * time.Millisecond)
		}
		if !assertOrderIndependent(t, r, errs, round) {
			return
		}
	}
}

// An event from elsewhere (a relay, a replay) may carry any number of
// ancestors; sentryotel stamps at most ancestry.MaxDepth. FromEvent keeps the
// nearest ancestry.MaxDepth: every decision (Split walks every chain) and
// every acknowledgement (SendEvent walks the chain under a lock) would
// otherwise cost in proportion to what an event says.
func TestFromEventBoundsAncestors(t *testing.T) {
	chain := make([]string, 100_000)
	for i := range chain {
		chain[i] = fmt.Sprintf("%016x", i+1)
	}
	ev := sentry.NewEvent()
	ev.Contexts["tracedup"] = sentry.Context{"ancestors": strings.Join(chain, ",")}
	got := rootcause.FromEvent(ev).Ancestors
	require.Len(t, got, ancestry.MaxDepth)
	assert.Equal(t, chain[:ancestry.MaxDepth], got, "the nearest are kept")

	ev.Contexts["tracedup"] = sentry.Context{"ancestors": strings.Join(chain[:ancestry.MaxDepth], ",")}
	assert.Equal(t, chain[:ancestry.MaxDepth], rootcause.FromEvent(ev).Ancestors, "a full chain is kept whole")
}

// treeErrors builds n errors on the spans of one consistent span tree of one
// process, with full ancestor chains and distinct timestamps.
func treeErrors(r *rand.Rand, n int, lastChild bool) []rootcause.Error {
	const spans = 10
	parent := make([]int, spans)
	parent[0] = -1
	for i := 1; i < spans; i++ {
		parent[i] = r.IntN(i)
	}
	name := func(i int) string { return fmt.Sprintf("%016x", i+1) }
	errs := make([]rootcause.Error, n)
	for i := range errs {
		s := r.IntN(spans)
		e := rootcause.Error{
			EventID:   fmt.Sprint(i),
			TraceID:   "t",
			SpanID:    name(s),
			Service:   "svc",
			Timestamp: t0.Add(time.Duration(i) * time.Millisecond),
		}
		e.ExceptionType = []string{"E1", "E2", "E3"}[r.IntN(3)]
		if p := parent[s]; p >= 0 {
			e.ParentSpanID = name(p)
			for a := p; a >= 0; a = parent[a] {
				e.Ancestors = append(e.Ancestors, name(a))
			}
		}
		if lastChild {
			var kids []int
			for k := range spans {
				if parent[k] == s {
					kids = append(kids, k)
				}
			}
			if len(kids) == 0 {
				e.LastChild = rootcause.NoChild
			} else {
				e.LastChild = name(kids[r.IntN(len(kids))])
			}
		}
		errs[i] = e
	}
	return errs
}

func TestProbeSplitIsOrderIndependentOnATree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 20000 {
		errs := treeErrors(r, 2+r.IntN(8), round%2 == 0)
		if !assertOrderIndependent(t, r, errs, round) {
			return
		}
	}
}

// assertOrderIndependent checks that Split groups errs the same in one
// random order as in the given one.
func assertOrderIndependent(t *testing.T, r *rand.Rand, errs []rootcause.Error, round int) bool {
	t.Helper()
	ident := make([]int, len(errs))
	for i := range ident {
		ident[i] = i
	}
	want := partition(rootcause.Split(errs), ident)
	perm := r.Perm(len(errs))
	shuffled := make([]rootcause.Error, len(errs))
	for i, p := range perm {
		shuffled[i] = errs[p]
	}
	got := partition(rootcause.Split(shuffled), perm)
	return assert.Equal(t, want, got, "round %d: %+v\nperm %v", round, errs, perm)
}
