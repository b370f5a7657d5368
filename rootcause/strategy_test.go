package rootcause_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/rootcause"
)

func TestEarliestAndNonRootFirst(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name                string
		errs                []rootcause.Error
		earliest, nonRootFt string
	}{
		{
			name:     "article cascade",
			errs:     article(true, 0),
			earliest: "payment", nonRootFt: "payment",
		},
		{
			name:     "root span error earliest",
			errs:     []rootcause.Error{e("leaf", "l", "r", 2*ms), e("root", "r", "", 1*ms)},
			earliest: "root", nonRootFt: "leaf",
		},
		{
			name:     "only root span errors",
			errs:     []rootcause.Error{e("second", "r", "", 2*ms), e("first", "r", "", 1*ms)},
			earliest: "first", nonRootFt: "first",
		},
		{
			name:     "tie: lowest index",
			errs:     []rootcause.Error{e("root", "r", "", 0), e("one", "a", "r", 0), e("two", "b", "r", 0)},
			earliest: "root", nonRootFt: "one",
		},
		{
			name:     "zero timestamp counts as latest",
			errs:     []rootcause.Error{{EventID: "zero", SpanID: "a", ParentSpanID: "r"}, e("known", "b", "r", time.Hour)},
			earliest: "known", nonRootFt: "known",
		},
		{
			name:     "all timestamps zero: lowest index",
			errs:     []rootcause.Error{{EventID: "one", ParentSpanID: "r"}, {EventID: "two", ParentSpanID: "r"}},
			earliest: "one", nonRootFt: "one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pick(rootcause.Earliest(), tt.errs)
			assert.Equal(t, tt.earliest, got, "Earliest picked %q, want %q", got, tt.earliest)
			got = pick(rootcause.NonRootFirst(), tt.errs)
			assert.Equal(t, tt.nonRootFt, got, "NonRootFirst picked %q, want %q", got, tt.nonRootFt)
		})
	}
}

func TestBuiltinsOnNoErrors(t *testing.T) {
	for _, s := range []rootcause.Strategy{
		rootcause.Earliest(), rootcause.NonRootFirst(), rootcause.Deepest(), rootcause.Default(),
		rootcause.DemoteTypes(nil, "X"), rootcause.FirstOf(rootcause.Earliest()),
	} {
		assert.Equal(t, -1, s.RootCause(nil), "%s on no errors", rootcause.Describe(s))
		assert.Equal(t, -1, s.RootCause([]rootcause.Error{}), "%s on no errors", rootcause.Describe(s))
	}
}

func TestFirstOf(t *testing.T) {
	errs := []rootcause.Error{e("a", "a", "", 0), e("b", "b", "a", 0)}
	fixed := func(i int) rootcause.Strategy {
		return rootcause.StrategyFunc(func([]rootcause.Error) int { return i })
	}
	tests := []struct {
		name       string
		strategies []rootcause.Strategy
		want       int
	}{
		{"first answers", []rootcause.Strategy{fixed(1), fixed(0)}, 1},
		{"-1 asks the next", []rootcause.Strategy{fixed(-1), fixed(0)}, 0},
		{"too large asks the next", []rootcause.Strategy{fixed(2), fixed(1)}, 1},
		{"nil is skipped", []rootcause.Strategy{nil, fixed(1)}, 1},
		{"none answers", []rootcause.Strategy{fixed(-1), fixed(5)}, -1},
		{"empty", nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rootcause.FirstOf(tt.strategies...).RootCause(errs)
			assert.Equal(t, tt.want, got, "FirstOf returned %d, want %d", got, tt.want)
		})
	}
}

func TestFirstOfPropagatesPanics(t *testing.T) {
	asked := false
	s := rootcause.FirstOf(
		rootcause.StrategyFunc(func([]rootcause.Error) int { panic("broken heuristic") }),
		rootcause.StrategyFunc(func([]rootcause.Error) int { asked = true; return 0 }),
	)
	assert.PanicsWithValue(t, "broken heuristic", func() { s.RootCause(article(true, 0)) })
	assert.False(t, asked, "FirstOf asked the next strategy after a panic")
}

func TestDemoteTypes(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		next  rootcause.Strategy
		types []string
		errs  []rootcause.Error
		want  string
	}{
		{
			name:  "wrappers demoted, next picks among the rest",
			types: []string{"DownstreamError", "ServiceCallFailed"},
			errs:  article(false, 2*time.Second), // payment's clock ahead: time alone is wrong
			want:  "payment",
		},
		{
			name:  "index mapped back to errs",
			next:  rootcause.Earliest(),
			types: []string{"Wrapper"},
			errs: []rootcause.Error{
				typed(e("w1", "", "", 0), "", "*main.Wrapper"),
				typed(e("late", "", "", 3*ms), "", "*main.Cause"),
				typed(e("w2", "", "", 1*ms), "", "Wrapper"),
				typed(e("early", "", "", 2*ms), "", "main.Cause"),
			},
			want: "early",
		},
		{
			name:  "all demoted: next picks among all",
			next:  rootcause.Earliest(),
			types: []string{"DownstreamError", "ServiceCallFailed"},
			errs: []rootcause.Error{
				typed(e("gw", "", "", 2*ms), "", "*main.DownstreamError"),
				typed(e("order", "", "", 1*ms), "", "*main.ServiceCallFailed"),
			},
			want: "order",
		},
		{
			name:  "qualified type matches with or without '*' only",
			next:  rootcause.Earliest(),
			types: []string{"main.Wrapper"},
			errs: []rootcause.Error{
				typed(e("ours", "", "", 1*ms), "", "*main.Wrapper"),
				typed(e("theirs", "", "", 2*ms), "", "*other.Wrapper"),
			},
			want: "theirs",
		},
		{
			name:  "package path",
			next:  rootcause.Earliest(),
			types: []string{"DownstreamError"},
			errs: []rootcause.Error{
				typed(e("gw", "", "", 1*ms), "", "github.com/x/y.DownstreamError"),
				typed(e("cause", "", "", 2*ms), "", "github.com/x/y.Other"),
			},
			want: "cause",
		},
		{
			name:  "prefix of a name does not match",
			next:  rootcause.Earliest(),
			types: []string{"Error"},
			errs: []rootcause.Error{
				typed(e("gw", "", "", 1*ms), "", "*main.DownstreamError"),
				typed(e("plain", "", "", 2*ms), "", "*errors.Error"),
			},
			want: "gw",
		},
		{
			name: "no type given: next decides",
			next: rootcause.Earliest(),
			errs: article(true, 0),
			want: "payment",
		},
		{
			name:  "out of range answer from next is -1",
			next:  rootcause.StrategyFunc(func([]rootcause.Error) int { return 7 }),
			types: []string{"DownstreamError"},
			errs:  article(true, 0),
			want:  "<out of range>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rootcause.DemoteTypes(tt.next, tt.types...)
			before := clone(tt.errs)
			got := pick(s, tt.errs)
			assert.Equal(t, tt.want, got, "%s picked %q, want %q", rootcause.Describe(s), got, tt.want)
			assert.Equal(t, before, tt.errs, "DemoteTypes modified errs")
		})
	}
	assert.Equal(t, -1, rootcause.DemoteTypes(rootcause.StrategyFunc(func([]rootcause.Error) int { return -1 }), "DownstreamError").RootCause(article(true, 0)))
}

func TestDemoteTypesCopiesTypes(t *testing.T) {
	types := []string{"DownstreamError"}
	s := rootcause.DemoteTypes(rootcause.Earliest(), types...)
	types[0] = "PaymentDeclined"
	assert.Equal(t, "DemoteTypes{DownstreamError}->Earliest", rootcause.Describe(s))
}

func TestShortType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"*main.DownstreamError", "DownstreamError"},
		{"main.DownstreamError", "DownstreamError"},
		{"github.com/x/y.DownstreamError", "DownstreamError"},
		{"**pkg.T", "T"},
		{"DownstreamError", "DownstreamError"},
		{"requests.exceptions.HTTPError", "HTTPError"},
		{"*pkg.Wrapped[example.com/p.T]", "Wrapped[example.com/p.T]"},
		{"", ""},
	}
	for _, tt := range tests {
		got := rootcause.Error{ExceptionType: tt.in}.ShortType()
		assert.Equal(t, tt.want, got, "ShortType of %q is %q, want %q", tt.in, got, tt.want)
	}
}

func TestDescriptions(t *testing.T) {
	tests := []struct {
		s    rootcause.Strategy
		want string
	}{
		{rootcause.Earliest(), "Earliest"},
		{rootcause.NonRootFirst(), "NonRootFirst{tie:Earliest}"},
		{rootcause.Deepest(), "Deepest{tie:Earliest}"},
		{rootcause.Default(), "Deepest{tie:Earliest}"},
		{rootcause.DemoteTypes(nil, "DownstreamError", "ServiceCallFailed"), "DemoteTypes{DownstreamError,ServiceCallFailed}->Deepest{tie:Earliest}"},
		{rootcause.FirstOf(rootcause.Deepest(), nil, rootcause.Earliest()), "FirstOf{Deepest{tie:Earliest},Earliest}"},
		{rootcause.FirstOf(rootcause.StrategyFunc(func([]rootcause.Error) int { return 0 })), "FirstOf{rootcause.StrategyFunc}"},
	}
	for _, tt := range tests {
		got := rootcause.Describe(tt.s)
		assert.Equal(t, tt.want, got, "Describe returned %q, want %q", got, tt.want)
	}
}

// TestConcurrentUse runs every built-in on shared errs from several
// goroutines; -race reports any shared state.
func TestConcurrentUse(t *testing.T) {
	strategies := []rootcause.Strategy{
		rootcause.Earliest(), rootcause.NonRootFirst(), rootcause.Deepest(), rootcause.Default(),
		rootcause.DemoteTypes(nil, "DownstreamError", "ServiceCallFailed"),
		rootcause.FirstOf(rootcause.Deepest(), rootcause.Earliest()),
	}
	errs := article(false, 0)
	large := largeTrace(100)
	before, beforeLarge := clone(errs), clone(large)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				for _, s := range strategies {
					if got := pick(s, errs); got != "payment" {
						t.Errorf("%s picked %q, want %q", rootcause.Describe(s), got, "payment")
					}
					s.RootCause(large)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, before, errs, "a strategy modified errs")
	assert.Equal(t, beforeLarge, large, "a strategy modified errs")
}

// TestDemoteTypesLargeTrace covers traces past 64 errors, where the kept
// errors are matched again rather than remembered.
func TestDemoteTypesLargeTrace(t *testing.T) {
	errs := largeTrace(100)
	for _, i := range []int{5, 70, 90} {
		errs[i].ExceptionType = "*main.PaymentDeclined"
	}
	errs[90].Timestamp = t0 // the earliest kept error, past index 64
	s := rootcause.DemoteTypes(rootcause.Earliest(), "DownstreamError", "ServiceCallFailed")
	got := s.RootCause(errs)
	assert.Equal(t, 90, got, "%s picked %d, want 90", rootcause.Describe(s), got)
	errs[90].Timestamp = t0.Add(time.Hour)
	got = s.RootCause(errs)
	assert.Equal(t, 70, got, "%s picked %d, want 70", rootcause.Describe(s), got)
}
