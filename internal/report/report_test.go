package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/rootcause"
)

var t0 = time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)

// cascade is one failed request: gateway -> order -> payment, each service
// capturing its error, payment's first by the span links but, with skewed
// clocks, not first by time.
func cascade(n int) []Event {
	trace := fmt.Sprintf("%032x", n+1)
	span := func(s int) string { return fmt.Sprintf("%016x", n*10+s) }
	at := t0.Add(time.Duration(n) * time.Minute)
	return []Event{
		{Error: rootcause.Error{EventID: fmt.Sprintf("g%d", n), TraceID: trace, SpanID: span(1), Service: "gateway",
			ExceptionType: "*main.DownstreamError", Message: "order: 502", Timestamp: at.Add(30 * time.Millisecond)}, IssueID: "100", Title: "*main.DownstreamError: order: 502"},
		{Error: rootcause.Error{EventID: fmt.Sprintf("o%d", n), TraceID: trace, SpanID: span(2), ParentSpanID: span(1), Service: "order",
			ExceptionType: "*main.DownstreamError", Message: "payment: 502", Timestamp: at.Add(10 * time.Millisecond)}, IssueID: "200", Title: "*main.DownstreamError: payment: 502"},
		{Error: rootcause.Error{EventID: fmt.Sprintf("p%d", n), TraceID: trace, SpanID: span(3), ParentSpanID: span(2), Service: "payment",
			ExceptionType: "*main.PaymentDeclined", Message: "card declined", Timestamp: at.Add(20 * time.Millisecond)}, IssueID: "300", Title: "*main.PaymentDeclined: card declined"},
	}
}

func TestBuildCascades(t *testing.T) {
	var events []Event
	for n := range 3 {
		events = append(events, cascade(n)...)
	}
	events = append(events,
		Event{Error: rootcause.Error{EventID: "x1", Service: "order"}, IssueID: "400"},                              // no trace
		Event{Error: rootcause.Error{EventID: "s1", TraceID: "ff", Service: "payment"}, IssueID: "300", Title: "x"}, // alone in its trace
	)
	r := Build(events, rootcause.Default(), nil)

	assert.Equal(t, 11, r.EventsRead)
	assert.Equal(t, 1, r.EventsWithoutTrace)
	assert.Equal(t, 4, r.Traces)
	assert.Equal(t, 3, r.TracesWithKnownCascades)
	assert.Equal(t, 4, r.Incidents, "one root cause per trace, the lone event's included")
	assert.Equal(t, 6, r.KnownDuplicateEvents)
	assert.Zero(t, r.StrategyFailures)
	assert.Equal(t, rootcause.Describe(rootcause.Default()), r.Strategy)

	require.Len(t, r.Cascades, 3)
	for _, c := range r.Cascades {
		assert.Equal(t, "300", c.RootIssue, "trace %s", c.TraceID)
		assert.Equal(t, "payment", c.Events[c.RootCause].Service)
		assert.True(t, c.Events[c.RootCause].RootCause)
		assert.Equal(t, []string{"200", "300", "100"}, c.Issues, "in order of time")
		assert.Equal(t, []string{"order", "payment", "gateway"}, c.Services)
	}
	assert.Equal(t, []SymptomIssue{
		{IssueID: "100", Title: "*main.DownstreamError: order: 502", Services: []string{"gateway"}, Traces: 3, Events: 3,
			SymptomOf: []RootIssue{{IssueID: "300", Title: "*main.PaymentDeclined: card declined", Traces: 3}}},
		{IssueID: "200", Title: "*main.DownstreamError: payment: 502", Services: []string{"order"}, Traces: 3, Events: 3,
			SymptomOf: []RootIssue{{IssueID: "300", Title: "*main.PaymentDeclined: card declined", Traces: 3}}},
	}, r.KnownSymptoms)
}

func TestBuildIssueThatIsSometimesRootIsNoSymptom(t *testing.T) {
	events := cascade(0)
	// In another trace the order issue fails on its own.
	events = append(events, Event{Error: rootcause.Error{EventID: "o9", TraceID: "ee", Service: "order", Timestamp: t0}, IssueID: "200"})
	r := Build(events, nil, nil)
	require.Len(t, r.KnownSymptoms, 1)
	assert.Equal(t, "100", r.KnownSymptoms[0].IssueID)
}

func TestBuildStrategyFailures(t *testing.T) {
	for name, s := range map[string]rootcause.Strategy{
		"panics":       rootcause.StrategyFunc(func([]rootcause.Error) int { panic("broken") }),
		"out of range": rootcause.StrategyFunc(func(errs []rootcause.Error) int { return len(errs) }),
	} {
		t.Run(name, func(t *testing.T) {
			r := Build(append(cascade(0), cascade(1)...), s, nil)
			assert.Equal(t, 2, r.StrategyFailures)
			require.Len(t, r.Cascades, 2)
			assert.Equal(t, -1, r.Cascades[0].RootCause)
			assert.Empty(t, r.KnownSymptoms, "no root cause, no symptoms")
			assert.Equal(t, 4, r.KnownDuplicateEvents)
		})
	}
}

func TestBuildEmpty(t *testing.T) {
	r := Build(nil, nil, nil)
	assert.NotNil(t, r.Cascades)
	assert.NotNil(t, r.KnownSymptoms)
	assert.NotNil(t, r.SameRequest)
	assert.NotNil(t, r.LikelySymptoms)
	assert.Equal(t, "0 events, 0 traces, 0 known cascades, 0 traces link not known, 0 known and 0 likely symptom issues", r.String())
}

func TestBuildMissingIssueID(t *testing.T) {
	events := cascade(0)
	events[0].IssueID = ""
	r := Build(events, nil, nil)
	require.Len(t, r.KnownSymptoms, 1)
	assert.Equal(t, "200", r.KnownSymptoms[0].IssueID)
}

// TestIncidentsOfOneTrace pins today's grouping rule, the one place the
// incident rule will replace: a trace is one incident of all its errors, in
// arrival order, its root cause picked by the strategy.
func TestIncidentsOfOneTrace(t *testing.T) {
	evs := cascade(0)
	errs := make([]rootcause.Error, len(evs))
	for i, e := range evs {
		errs[i] = e.Error
	}
	got := incidents(rootcause.StrategyFunc(func(errs []rootcause.Error) int { return 2 }), errs)
	assert.Equal(t, []incident{{Root: 2, Members: []int{0, 1, 2}}}, got)

	got = incidents(rootcause.StrategyFunc(func([]rootcause.Error) int { panic("broken") }), errs)
	assert.Equal(t, -1, got[0].Root, "a panicking strategy fails its incident, not the report")
}

// TestIndependentFailuresOfOneTrace: two failures of one request that no
// span links (sibling calls of the gateway, each failing in its own
// service) are two incidents with a root cause each, as the deduplicator
// sends them; OnePerTrace makes them one.
func TestIndependentFailuresOfOneTrace(t *testing.T) {
	trace := "0af7651916cd43dd8448eb211c80319c"
	events := []Event{
		{Error: rootcause.Error{EventID: "g", TraceID: trace, SpanID: "a1", Service: "gateway",
			ExceptionType: "*main.DownstreamError", Timestamp: t0.Add(30 * time.Millisecond)}, IssueID: "100"},
		{Error: rootcause.Error{EventID: "p", TraceID: trace, SpanID: "b2", ParentSpanID: "a1", Service: "payment",
			ExceptionType: "*main.PaymentDeclined", Timestamp: t0.Add(10 * time.Millisecond)}, IssueID: "300"},
		{Error: rootcause.Error{EventID: "s", TraceID: trace, SpanID: "c3", ParentSpanID: "a1", Service: "stock",
			ExceptionType: "*main.OutOfStock", Timestamp: t0.Add(20 * time.Millisecond)}, IssueID: "500"},
	}
	r := Build(events, rootcause.Default(), nil)
	assert.Equal(t, 2, r.Incidents)
	assert.Equal(t, 1, r.KnownDuplicateEvents, "the gateway's error, a symptom of the first failure")
	roots := map[string]bool{}
	for _, c := range r.Cascades {
		roots[c.RootIssue] = true
	}
	assert.Equal(t, map[string]bool{"300": true}, roots, "payment's incident holds the gateway's error")

	r = Build(events, rootcause.OnePerTrace(rootcause.Default()), nil)
	assert.Equal(t, 1, r.Incidents)
	assert.Equal(t, 2, r.KnownDuplicateEvents)
}
