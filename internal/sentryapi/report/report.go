package report

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tracedup/tracedup/rootcause"
)

// Report is the post-hoc duplicate report.
type Report struct {
	// Strategy describes the strategy that picked the root causes.
	Strategy string `json:"strategy"`
	// EventsRead is how many error events were read.
	EventsRead int `json:"events_read"`
	// EventsWithoutTrace is how many of them carried no trace id at all.
	EventsWithoutTrace int `json:"events_without_trace"`
	// Traces is how many distinct traces the events belong to.
	Traces int `json:"traces"`
	// TracesWithDuplicates is how many traces have more than one error.
	TracesWithDuplicates int `json:"traces_with_duplicates"`
	// DuplicateEvents is how many events the deduplicator would have
	// suppressed: all but one per trace with more than one error.
	DuplicateEvents int `json:"duplicate_events"`
	// StrategyFailures counts traces where the strategy panicked or returned
	// an index out of range; they have no root cause.
	StrategyFailures int `json:"strategy_failures"`
	// Cascades are the traces with more than one error, oldest first.
	Cascades []Cascade `json:"cascades"`
	// SymptomIssues are the issues that appear in at least one cascade and
	// were never the root cause of a trace they appear in: candidates to
	// merge into their root cause's issue, or to mute. Most traces first.
	SymptomIssues []SymptomIssue `json:"symptom_issues"`
}

// Cascade is one trace with more than one error.
type Cascade struct {
	TraceID string `json:"trace_id"`
	// Events are the trace's errors, oldest first.
	Events []CascadeEvent `json:"events"`
	// RootCause is the index into Events the strategy picked, -1 if it failed.
	RootCause int `json:"root_cause"`
	// RootIssue is the issue of the root cause, "" if the strategy failed.
	RootIssue string `json:"root_issue"`
	// Issues and Services are the distinct issues and services, in order of
	// first appearance.
	Issues   []string `json:"issues"`
	Services []string `json:"services"`
}

// CascadeEvent is one error of a cascade.
type CascadeEvent struct {
	EventID       string    `json:"event_id"`
	IssueID       string    `json:"issue_id"`
	Project       string    `json:"project,omitempty"`
	Service       string    `json:"service,omitempty"`
	ExceptionType string    `json:"exception_type,omitempty"`
	Message       string    `json:"message,omitempty"`
	SpanID        string    `json:"span_id,omitempty"`
	ParentSpanID  string    `json:"parent_span_id,omitempty"`
	Timestamp     time.Time `json:"timestamp"`
	RootCause     bool      `json:"root_cause"`
}

// SymptomIssue is an issue that only ever appeared as a symptom.
type SymptomIssue struct {
	IssueID  string   `json:"issue_id"`
	Title    string   `json:"title"`
	Services []string `json:"services"`
	// Traces and Events count the cascades it appeared in and its events
	// there.
	Traces int `json:"traces"`
	Events int `json:"events"`
	// SymptomOf are the root-cause issues of those cascades, most traces
	// first.
	SymptomOf []RootIssue `json:"symptom_of"`
}

// RootIssue is a root-cause issue and the number of traces it caused.
type RootIssue struct {
	IssueID string `json:"issue_id"`
	Title   string `json:"title"`
	Traces  int    `json:"traces"`
}

// Build makes the report of events with strategy s (nil means
// rootcause.Default()). A strategy that panics or returns a bad index is
// counted in StrategyFailures; its trace has no root cause, and its issues
// count as neither root cause nor symptom.
func Build(events []Event, s rootcause.Strategy) *Report {
	if s == nil {
		s = rootcause.Default()
	}
	r := &Report{Strategy: rootcause.Describe(s), EventsRead: len(events), Cascades: []Cascade{}, SymptomIssues: []SymptomIssue{}}

	byTrace := map[string][]Event{}
	var traceOrder []string
	for _, e := range events {
		if e.TraceID == "" {
			r.EventsWithoutTrace++
			continue
		}
		if _, ok := byTrace[e.TraceID]; !ok {
			traceOrder = append(traceOrder, e.TraceID)
		}
		byTrace[e.TraceID] = append(byTrace[e.TraceID], e)
	}
	r.Traces = len(traceOrder)

	titles := map[string]string{}
	everRoot := map[string]bool{}  // issue -> root cause of some trace
	failed := map[string]bool{}    // issue -> in a trace the strategy failed on
	symptom := map[string]*tally{} // issue -> where it was a symptom
	for _, id := range traceOrder {
		evs := byTrace[id]
		// Strategies see a trace's errors in the order they arrived.
		slices.SortStableFunc(evs, func(a, b Event) int {
			return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.EventID, b.EventID))
		})
		for _, e := range evs {
			if titles[e.IssueID] == "" {
				titles[e.IssueID] = e.Title
			}
		}
		root := pick(s, evs)
		if len(evs) == 1 {
			if root == 0 {
				everRoot[evs[0].IssueID] = true
			} else {
				r.StrategyFailures++
				failed[evs[0].IssueID] = true
			}
			continue
		}
		r.TracesWithDuplicates++
		r.DuplicateEvents += len(evs) - 1
		c := Cascade{TraceID: id, RootCause: root}
		for i, e := range evs {
			c.Events = append(c.Events, CascadeEvent{
				EventID: e.EventID, IssueID: e.IssueID, Project: e.Project, Service: e.Service,
				ExceptionType: e.ExceptionType, Message: e.Message, SpanID: e.SpanID,
				ParentSpanID: e.ParentSpanID, Timestamp: e.Timestamp, RootCause: i == root,
			})
			c.Issues = appendNew(c.Issues, e.IssueID)
			c.Services = appendNew(c.Services, e.Service)
		}
		if root < 0 {
			r.StrategyFailures++
			for _, e := range evs {
				failed[e.IssueID] = true
			}
			r.Cascades = append(r.Cascades, c)
			continue
		}
		rootIssue := evs[root].IssueID
		c.RootIssue = rootIssue
		everRoot[rootIssue] = true
		for _, issue := range c.Issues { // appendNew left out ""
			if issue == rootIssue {
				continue
			}
			t := symptom[issue]
			if t == nil {
				t = &tally{roots: map[string]int{}}
				symptom[issue] = t
			}
			t.traces++
			t.roots[rootIssue]++
		}
		for i, e := range evs {
			if i != root && e.IssueID != rootIssue && e.IssueID != "" {
				t := symptom[e.IssueID]
				t.events++
				t.services = appendNew(t.services, e.Service)
			}
		}
		r.Cascades = append(r.Cascades, c)
	}

	for issue, t := range symptom {
		if everRoot[issue] || failed[issue] {
			continue
		}
		si := SymptomIssue{IssueID: issue, Title: titles[issue], Services: t.services, Traces: t.traces, Events: t.events}
		for root, n := range t.roots {
			si.SymptomOf = append(si.SymptomOf, RootIssue{IssueID: root, Title: titles[root], Traces: n})
		}
		slices.SortFunc(si.SymptomOf, func(a, b RootIssue) int {
			return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
		})
		r.SymptomIssues = append(r.SymptomIssues, si)
	}
	slices.SortFunc(r.SymptomIssues, func(a, b SymptomIssue) int {
		return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
	})
	slices.SortStableFunc(r.Cascades, func(a, b Cascade) int {
		return cmp.Or(a.Events[0].Timestamp.Compare(b.Events[0].Timestamp), cmp.Compare(a.TraceID, b.TraceID))
	})
	return r
}

type tally struct {
	traces, events int
	services       []string
	roots          map[string]int
}

// pick asks s for the root cause of evs; -1 when it panics or answers out of
// range, so that a broken strategy shows in the report instead of crashing it.
func pick(s rootcause.Strategy, evs []Event) (i int) {
	errs := make([]rootcause.Error, len(evs))
	for j, e := range evs {
		errs[j] = e.Error
	}
	defer func() {
		if recover() != nil {
			i = -1
		}
	}()
	i = s.RootCause(errs)
	if i < 0 || i >= len(errs) {
		return -1
	}
	return i
}

// appendNew appends v to l unless it is empty or already there.
func appendNew(l []string, v string) []string {
	if v == "" || slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}

// String summarises the report in one line.
func (r *Report) String() string {
	return fmt.Sprintf("%d events, %d traces, %d with duplicates, %d duplicate events, %d symptom-only issues",
		r.EventsRead, r.Traces, r.TracesWithDuplicates, r.DuplicateEvents, len(r.SymptomIssues))
}
