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
	// Incidents is how many independent failures the traces hold: one root
	// cause each.
	Incidents int `json:"incidents"`
	// TracesWithDuplicates is how many traces hold at least one cascade.
	TracesWithDuplicates int `json:"traces_with_duplicates"`
	// DuplicateEvents is how many events the deduplicator would have
	// suppressed: all but the root cause of every incident.
	DuplicateEvents int `json:"duplicate_events"`
	// StrategyFailures counts incidents where the strategy panicked or
	// returned an index out of range; they have no root cause.
	StrategyFailures int `json:"strategy_failures"`
	// Cascades are the incidents with more than one error, oldest first.
	Cascades []Cascade `json:"cascades"`
	// SymptomIssues are the issues that appear in at least one cascade and
	// were never the root cause of an incident: candidates to merge into
	// their root cause's issue, or to mute. Most cascades first.
	SymptomIssues []SymptomIssue `json:"symptom_issues"`
}

// Cascade is one incident with more than one error: a root cause and the
// errors of the same trace that are its symptoms. A trace with two
// independent failures has two cascades, each carrying the trace id.
type Cascade struct {
	TraceID string `json:"trace_id"`
	// Events are the incident's errors, oldest first.
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
	// Traces counts the cascades it appeared in, and Events its events
	// there.
	Traces int `json:"traces"`
	Events int `json:"events"`
	// SymptomOf are the root-cause issues of those cascades, most first.
	SymptomOf []RootIssue `json:"symptom_of"`
}

// RootIssue is a root-cause issue and the number of cascades it caused.
type RootIssue struct {
	IssueID string `json:"issue_id"`
	Title   string `json:"title"`
	Traces  int    `json:"traces"`
}

// incident is one independent failure within a trace: indexes into the
// trace's errors, the root cause's among them (-1 when the strategy failed).
// It has the shape of rootcause's incidents so that incidents can hand over
// to them.
type incident struct {
	Root    int
	Members []int
}

// incidents splits the errors of one trace, in arrival order, into
// incidents by the rule the deduplicator uses (rootcause.Incidents). A
// strategy that panics or answers out of range makes the trace one incident
// with no root cause, so that the failure shows in the report.
func incidents(s rootcause.Strategy, errs []rootcause.Error) []incident {
	found, err := rootcause.Incidents(s, errs)
	if err != nil {
		members := make([]int, len(errs))
		for i := range errs {
			members[i] = i
		}
		return []incident{{Root: -1, Members: members}}
	}
	out := make([]incident, len(found))
	for i, inc := range found {
		out[i] = incident(inc)
	}
	return out
}

// Build makes the report of events with strategy s (nil means
// rootcause.Default()). A strategy that panics or returns a bad index is
// counted in StrategyFailures; its incident has no root cause, and its issues
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

	t := newTally()
	for _, id := range traceOrder {
		evs := byTrace[id]
		// Strategies see a trace's errors in the order they arrived.
		slices.SortStableFunc(evs, func(a, b Event) int {
			return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.EventID, b.EventID))
		})
		errs := make([]rootcause.Error, len(evs))
		for i, e := range evs {
			errs[i] = e.Error
			t.title(e)
		}
		cascades := 0
		for _, inc := range incidents(s, errs) {
			r.Incidents++
			if inc.Root < 0 {
				r.StrategyFailures++
			}
			if len(inc.Members) > 1 {
				cascades++
				r.DuplicateEvents += len(inc.Members) - 1
			}
			if c, ok := t.add(id, evs, inc); ok {
				r.Cascades = append(r.Cascades, c)
			}
		}
		if cascades > 0 {
			r.TracesWithDuplicates++
		}
	}
	r.SymptomIssues = t.symptoms()
	slices.SortStableFunc(r.Cascades, func(a, b Cascade) int {
		return cmp.Or(a.Events[0].Timestamp.Compare(b.Events[0].Timestamp), cmp.Compare(a.TraceID, b.TraceID))
	})
	return r
}

// tally gathers, across incidents, which issues were ever a root cause and
// where the others appeared as symptoms.
type tally struct {
	titles   map[string]string
	everRoot map[string]bool          // issue -> root cause of some incident
	failed   map[string]bool          // issue -> in an incident the strategy failed on
	symptom  map[string]*symptomTally // issue -> where it was a symptom
}

type symptomTally struct {
	cascades, events int
	services         []string
	roots            map[string]int
}

func newTally() *tally {
	return &tally{titles: map[string]string{}, everRoot: map[string]bool{}, failed: map[string]bool{}, symptom: map[string]*symptomTally{}}
}

func (t *tally) title(e Event) {
	if t.titles[e.IssueID] == "" {
		t.titles[e.IssueID] = e.Title
	}
}

// add records one incident of trace id over evs and returns its cascade, if
// it has more than one error.
func (t *tally) add(id string, evs []Event, inc incident) (Cascade, bool) {
	if len(inc.Members) == 1 {
		if e := evs[inc.Members[0]]; inc.Root >= 0 {
			t.everRoot[e.IssueID] = true
		} else {
			t.failed[e.IssueID] = true
		}
		return Cascade{}, false
	}
	c := Cascade{TraceID: id, RootCause: -1}
	for i, m := range inc.Members {
		e := evs[m]
		if m == inc.Root {
			c.RootCause = i
		}
		c.Events = append(c.Events, CascadeEvent{
			EventID: e.EventID, IssueID: e.IssueID, Project: e.Project, Service: e.Service,
			ExceptionType: e.ExceptionType, Message: e.Message, SpanID: e.SpanID,
			ParentSpanID: e.ParentSpanID, Timestamp: e.Timestamp, RootCause: m == inc.Root,
		})
		c.Issues = appendNew(c.Issues, e.IssueID)
		c.Services = appendNew(c.Services, e.Service)
	}
	if c.RootCause < 0 {
		for _, m := range inc.Members {
			t.failed[evs[m].IssueID] = true
		}
		return c, true
	}
	c.RootIssue = evs[inc.Root].IssueID
	t.everRoot[c.RootIssue] = true
	for _, issue := range c.Issues { // appendNew left out ""
		if issue == c.RootIssue {
			continue
		}
		s := t.symptom[issue]
		if s == nil {
			s = &symptomTally{roots: map[string]int{}}
			t.symptom[issue] = s
		}
		s.cascades++
		s.roots[c.RootIssue]++
	}
	for _, m := range inc.Members {
		if e := evs[m]; m != inc.Root && e.IssueID != c.RootIssue && e.IssueID != "" {
			s := t.symptom[e.IssueID]
			s.events++
			s.services = appendNew(s.services, e.Service)
		}
	}
	return c, true
}

// symptoms returns the issues that were symptoms and never a root cause,
// most cascades first.
func (t *tally) symptoms() []SymptomIssue {
	out := []SymptomIssue{}
	for issue, s := range t.symptom {
		if t.everRoot[issue] || t.failed[issue] {
			continue
		}
		si := SymptomIssue{IssueID: issue, Title: t.titles[issue], Services: s.services, Traces: s.cascades, Events: s.events}
		for root, n := range s.roots {
			si.SymptomOf = append(si.SymptomOf, RootIssue{IssueID: root, Title: t.titles[root], Traces: n})
		}
		slices.SortFunc(si.SymptomOf, func(a, b RootIssue) int {
			return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
		})
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b SymptomIssue) int {
		return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
	})
	return out
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
