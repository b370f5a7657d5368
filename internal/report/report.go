package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tracedup/tracedup/rootcause"
)

// The two kinds of link, as the JSON names them.
const (
	// LinkKnown: span data ties the errors together (the events' own
	// parent spans, or the trace's transactions).
	LinkKnown = "known"
	// LinkNotKnown: the errors share a request, and no span data says how
	// they relate.
	LinkNotKnown = "not known"
)

// Report is the post-hoc duplicate report. It keeps apart what the span
// links make known (Cascades, KnownSymptoms) and what only sharing a trace
// suggests (SameRequest, LikelySymptoms).
type Report struct {
	// Strategy describes the strategy that picked the root causes.
	Strategy string `json:"strategy"`
	// EventsRead is how many error events were read.
	EventsRead int `json:"events_read"`
	// EventsWithoutTrace is how many of them carried no trace id at all.
	EventsWithoutTrace int `json:"events_without_trace"`
	// Traces is how many distinct traces the events belong to.
	Traces int `json:"traces"`
	// Incidents is how many independent failures the traces hold by the
	// known links: one root cause each, what the deduplicator would send.
	Incidents int `json:"incidents"`
	// KnownCascades counts the incidents of more than one error, in
	// TracesWithKnownCascades traces; KnownDuplicateEvents is their errors
	// but the root causes: what the deduplicator would suppress.
	KnownCascades           int `json:"known_cascades"`
	TracesWithKnownCascades int `json:"traces_with_known_cascades"`
	KnownDuplicateEvents    int `json:"known_duplicate_events"`
	// TracesLinkNotKnown counts the traces of more than one incident whose
	// links are not known (SameRequest); EventsLinkNotKnown their errors,
	// and LikelyDuplicateEvents the incidents beside each likely root.
	TracesLinkNotKnown    int `json:"traces_link_not_known"`
	EventsLinkNotKnown    int `json:"events_link_not_known"`
	LikelyDuplicateEvents int `json:"likely_duplicate_events"`
	// StrategyFailures counts incidents where the strategy panicked or
	// returned an index out of range; they have no root cause.
	StrategyFailures int `json:"strategy_failures"`
	// Links says what was learned from the traces' transactions; the
	// reader of the API fills it in.
	Links Links `json:"links"`
	// Cascades are the known incidents of more than one error, oldest first.
	Cascades []Cascade `json:"cascades"`
	// SameRequest are the traces whose incidents are not known to be
	// linked, oldest first.
	SameRequest []Group `json:"same_request"`
	// KnownSymptoms are the issues that, in every trace where they appear,
	// are known symptoms of another issue: to merge into it, or to mute.
	KnownSymptoms []SymptomIssue `json:"known_symptoms"`
	// LikelySymptoms are the issues that were never a root cause, and in
	// some trace only came with another issue downstream, link not known.
	LikelySymptoms []LikelySymptom `json:"likely_symptoms"`
}

// Links says what the report learned from transactions.
type Links struct {
	// TracesNeedingLinks counts the traces of more than one incident by the
	// events' own links: those where transactions can tell more.
	TracesNeedingLinks int `json:"traces_needing_links"`
	// TracesRead counts those whose transactions were read; Limit is the
	// most that may be (-link-traces); Sampled says a sample was read.
	TracesRead int  `json:"traces_read"`
	Limit      int  `json:"limit"`
	Sampled    bool `json:"sampled"`
	// TracesWithTransactions counts the traces read that had any, and
	// TransactionsRead the transactions read in full.
	TracesWithTransactions int `json:"traces_with_transactions"`
	TransactionsRead       int `json:"transactions_read"`
	// Notes say what could not be read, and why.
	Notes []string `json:"notes"`
}

// Cascade is one known incident of more than one error: a root cause and
// the errors of the same trace that are known to be its symptoms. A trace
// with two independent failures has two, each carrying the trace id.
type Cascade struct {
	TraceID string `json:"trace_id"`
	// Link is LinkKnown.
	Link string `json:"link"`
	// Basis says where the links come from: "events" (the events' own
	// spans) or "transactions" (the trace's span tree).
	Basis string `json:"basis"`
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

// Group is one trace whose errors form several incidents that no known link
// ties together: the same request, link not known. Each of its events
// stands for one incident (its root cause), with the evidence a person needs
// to judge whether one caused the others.
type Group struct {
	TraceID string `json:"trace_id"`
	// Link is LinkNotKnown.
	Link string `json:"link"`
	// Why says why the links are not known.
	Why string `json:"why"`
	// Events are the incidents' root causes, oldest first by each host's
	// clock.
	Events []GroupEvent `json:"events"`
	// LikelyRoot is the index into Events of the likeliest root cause:
	// among the errors not on the trace's root span, the strategy's pick
	// (by time, where no link is known). -1 if the strategy failed.
	LikelyRoot      int      `json:"likely_root"`
	LikelyRootIssue string   `json:"likely_root_issue"`
	Services        []string `json:"services"`
}

// GroupEvent is one incident of a Group, as its root cause shows it.
type GroupEvent struct {
	CascadeEvent
	// Stands is how many errors the incident holds (1 alone, more for a
	// known cascade, which Cascades lists).
	Stands int `json:"stands_for"`
	// Clock is the time from the group's first error, by each host's own
	// clock: hosts disagree by as much as a cascade takes.
	Clock time.Duration `json:"clock_offset_ns"`
	// OnRootSpan: captured on the trace's root span (no parent span, where
	// the trace's other errors show parents): every other span of the trace
	// runs below it.
	OnRootSpan bool `json:"on_root_span"`
	// ParentElsewhere: its parent span is not the span of any error read (a
	// caller's client span, in another service).
	ParentElsewhere bool `json:"parent_elsewhere"`
	// Names lists the group's other services that its message or exception
	// type names: a caller's wrapper error names the service it called
	// ("payment service: 502"), so it is likelier upstream of that one.
	Names []string `json:"names,omitempty"`
	// Below lists the event ids of the group's errors whose spans are
	// known to run below this one's (where transactions were partly read).
	Below []string `json:"below,omitempty"`
	// LikelyRoot marks Events[Group.LikelyRoot].
	LikelyRoot bool `json:"likely_root"`
}

// SymptomIssue is an issue that, wherever it appears, is a known symptom.
type SymptomIssue struct {
	IssueID  string   `json:"issue_id"`
	Title    string   `json:"title"`
	Services []string `json:"services"`
	// Traces counts the traces it appeared in, and Events its events.
	Traces int `json:"traces"`
	Events int `json:"events"`
	// SymptomOf are the root-cause issues, most traces first.
	SymptomOf []RootIssue `json:"symptom_of"`
}

// LikelySymptom is an issue that was never a root cause, and in at least one
// trace only came with another issue, likelier the root cause, the link not
// known.
type LikelySymptom struct {
	IssueID  string   `json:"issue_id"`
	Title    string   `json:"title"`
	Services []string `json:"services"`
	// Traces counts every trace it appeared in; KnownTraces those where it
	// was a known symptom.
	Traces      int `json:"traces"`
	KnownTraces int `json:"known_traces"`
	Events      int `json:"events"`
	// ComesWith are the issues it came with downstream (the root cause,
	// known or likely), most traces first.
	ComesWith []RootIssue `json:"comes_with"`
}

// RootIssue is a root-cause issue and the number of traces it was one in.
type RootIssue struct {
	IssueID string `json:"issue_id"`
	Title   string `json:"title"`
	Traces  int    `json:"traces"`
}

// TraceLinks is what the transactions of one trace say.
type TraceLinks struct {
	// Parents maps each span of the trace's transactions to its parent span
	// ("" for the trace's root): the transactions' own spans, whose parents
	// are their callers' client spans, and their child spans.
	Parents map[string]string
	// Why says, where Parents is empty, why: no transactions, or not read.
	Why string
}

// Build makes the report of events with strategy s (nil means
// rootcause.Default()), using links, by trace id, where a trace's
// transactions were read (nil: none were). Errors get the ancestors their
// spans have in a trace's span tree; rootcause.Incidents then splits each
// trace by its one rule. A strategy that panics or returns a bad index is
// counted in StrategyFailures; its incident has no root cause, and its
// issues count as neither root cause nor symptom.
func Build(events []Event, s rootcause.Strategy, links map[string]TraceLinks) *Report {
	if s == nil {
		s = rootcause.Default()
	}
	r := &Report{
		Strategy: rootcause.Describe(s), EventsRead: len(events), Links: Links{Notes: []string{}},
		Cascades: []Cascade{}, SameRequest: []Group{}, KnownSymptoms: []SymptomIssue{}, LikelySymptoms: []LikelySymptom{},
	}
	traces := byTrace(events, &r.EventsWithoutTrace)
	r.Traces = len(traces)
	t := newTally()
	for _, e := range events { // an issue's title: its first event's, as read
		t.title(e)
	}
	for _, tr := range traces {
		evs := tr.events
		tl, haveTree := links[tr.id]
		haveTree = haveTree && len(tl.Parents) > 0
		covered := true
		errs := make([]rootcause.Error, len(evs))
		for i, e := range evs {
			errs[i] = e.Error
			if haveTree {
				var ok bool
				errs[i].Ancestors, ok = ancestors(tl.Parents, e.SpanID, e.ParentSpanID)
				covered = covered && ok
			}
		}
		incs := incidents(s, errs)
		basis := "events"
		if haveTree {
			basis = "transactions"
		}
		knownRoots := len(incs) == 1 || (haveTree && covered)
		cascades := 0
		for _, inc := range incs {
			r.Incidents++
			if inc.Root < 0 {
				r.StrategyFailures++
			}
			if len(inc.Members) > 1 {
				cascades++
				r.KnownDuplicateEvents += len(inc.Members) - 1
				r.Cascades = append(r.Cascades, cascadeOf(tr.id, basis, evs, inc))
			}
		}
		r.KnownCascades += cascades
		if cascades > 0 {
			r.TracesWithKnownCascades++
		}
		if knownRoots {
			t.known(tr.id, evs, incs)
			continue
		}
		g := group(tr.id, s, evs, errs, incs, whyNotKnown(tl, haveTree))
		r.TracesLinkNotKnown++
		r.EventsLinkNotKnown += len(evs)
		r.LikelyDuplicateEvents += len(g.Events) - 1
		r.SameRequest = append(r.SameRequest, g)
		t.unknown(tr.id, evs, incs, g)
	}
	r.KnownSymptoms, r.LikelySymptoms = t.symptoms()
	slices.SortStableFunc(r.Cascades, func(a, b Cascade) int {
		return cmp.Or(a.Events[0].Timestamp.Compare(b.Events[0].Timestamp), cmp.Compare(a.TraceID, b.TraceID))
	})
	slices.SortStableFunc(r.SameRequest, func(a, b Group) int {
		return cmp.Or(a.Events[0].Timestamp.Compare(b.Events[0].Timestamp), cmp.Compare(a.TraceID, b.TraceID))
	})
	return r
}

// NeedLinks returns the ids of the traces of events whose errors form more
// than one incident by the events' own links, in order of their first
// error: the traces where the transactions' span links can tell more.
func NeedLinks(events []Event, s rootcause.Strategy) []string {
	if s == nil {
		s = rootcause.Default()
	}
	var ids []string
	var none int
	for _, tr := range byTrace(events, &none) {
		errs := make([]rootcause.Error, len(tr.events))
		for i, e := range tr.events {
			errs[i] = e.Error
		}
		if len(errs) > 1 && len(incidents(s, errs)) > 1 {
			ids = append(ids, tr.id)
		}
	}
	return ids
}

// trace is one trace's events, in the order they arrived.
type trace struct {
	id     string
	events []Event
}

// byTrace groups events by trace id, in order of each trace's first error,
// and counts the events without one in *without.
func byTrace(events []Event, without *int) []trace {
	index := map[string]int{}
	var out []trace
	for _, e := range events {
		if e.TraceID == "" {
			*without++
			continue
		}
		i, ok := index[e.TraceID]
		if !ok {
			i = len(out)
			index[e.TraceID] = i
			out = append(out, trace{id: e.TraceID})
		}
		out[i].events = append(out[i].events, e)
	}
	for _, tr := range out {
		// Strategies see a trace's errors in the order they arrived.
		slices.SortStableFunc(tr.events, func(a, b Event) int {
			return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.EventID, b.EventID))
		})
	}
	slices.SortStableFunc(out, func(a, b trace) int {
		return cmp.Or(a.events[0].Timestamp.Compare(b.events[0].Timestamp), cmp.Compare(a.id, b.id))
	})
	return out
}

// maxChain bounds a walk up the span tree, against cycles in bad data.
const maxChain = 256

// ancestors returns the chain of spans enclosing span in the tree, nearest
// first, and whether the tree holds the span (or, failing that, its parent
// span, which then opens the chain).
func ancestors(parents map[string]string, span, parent string) ([]string, bool) {
	var start string
	if p, ok := parents[span]; ok && span != "" {
		start = p
	} else if _, ok := parents[parent]; ok && parent != "" {
		start = parent
	} else {
		return nil, false
	}
	var chain []string
	seen := map[string]bool{span: true}
	for id := start; id != "" && !seen[id] && len(chain) < maxChain; id = parents[id] {
		seen[id] = true
		chain = append(chain, id)
	}
	return chain, true
}

// whyNotKnown says why a trace's links are not known.
func whyNotKnown(tl TraceLinks, haveTree bool) string {
	switch {
	case haveTree:
		return "transactions read, but some errors' spans are not among their spans"
	case tl.Why != "":
		return tl.Why
	}
	return "transactions not read"
}

// incident is one independent failure within a trace: indexes into the
// trace's errors, the root cause's among them (-1 when the strategy failed).
type incident struct {
	Root    int
	Members []int
}

// incidents splits the errors of one trace, in arrival order, into
// incidents by the rule the deduplicator uses (rootcause.Incidents). A
// strategy that panics or answers out of range makes each error an incident
// with no root cause, so that the failure shows in the report and no error
// is taken for another's symptom.
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

func cascadeEvent(e Event, root bool) CascadeEvent {
	return CascadeEvent{
		EventID: e.EventID, IssueID: e.IssueID, Project: e.Project, Service: e.Service,
		ExceptionType: e.ExceptionType, Message: e.Message, SpanID: e.SpanID,
		ParentSpanID: e.ParentSpanID, Timestamp: e.Timestamp, RootCause: root,
	}
}

func cascadeOf(id, basis string, evs []Event, inc incident) Cascade {
	c := Cascade{TraceID: id, Link: LinkKnown, Basis: basis, RootCause: -1}
	for i, m := range inc.Members {
		e := evs[m]
		if m == inc.Root {
			c.RootCause = i
			c.RootIssue = e.IssueID
		}
		c.Events = append(c.Events, cascadeEvent(e, m == inc.Root))
		c.Issues = appendNew(c.Issues, e.IssueID)
		c.Services = appendNew(c.Services, e.Service)
	}
	return c
}

// group builds the Group of a trace whose incidents no known link ties.
func group(id string, s rootcause.Strategy, evs []Event, errs []rootcause.Error, incs []incident, why string) Group {
	g := Group{TraceID: id, Link: LinkNotKnown, Why: why, LikelyRoot: -1}
	spans := map[string]bool{}
	parentsVisible := false
	for _, e := range evs {
		spans[e.SpanID] = e.SpanID != ""
		parentsVisible = parentsVisible || e.ParentSpanID != ""
	}
	roots := make([]int, 0, len(incs)) // into evs
	for _, inc := range incs {
		root := inc.Root
		if root < 0 {
			root = inc.Members[0]
		}
		roots = append(roots, root)
		e := evs[root]
		ge := GroupEvent{
			CascadeEvent: cascadeEvent(e, false), Stands: len(inc.Members),
			OnRootSpan:      parentsVisible && e.ParentSpanID == "" && e.SpanID != "",
			ParentElsewhere: e.ParentSpanID != "" && !spans[e.ParentSpanID],
		}
		g.Events = append(g.Events, ge)
	}
	// Where transactions were partly read, some spans are known to run
	// below others.
	for i, a := range roots {
		for _, b := range roots {
			if a != b && errs[a].SpanID != "" && slices.Contains(errs[b].Ancestors, errs[a].SpanID) {
				g.Events[i].Below = append(g.Events[i].Below, evs[b].EventID)
			}
		}
	}
	order := make([]int, len(g.Events))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(g.Events[a].Timestamp.Compare(g.Events[b].Timestamp), cmp.Compare(g.Events[a].EventID, g.Events[b].EventID))
	})
	sorted := make([]GroupEvent, len(order))
	sortedRoots := make([]int, len(order))
	for i, k := range order {
		sorted[i], sortedRoots[i] = g.Events[k], roots[k]
	}
	g.Events = sorted
	for i := range g.Events {
		g.Services = appendNew(g.Services, g.Events[i].Service)
	}
	for i := range g.Events {
		e := &g.Events[i]
		text := strings.ToLower(e.Message + " " + e.ExceptionType)
		for _, svc := range g.Services {
			if svc != e.Service && len(svc) >= 3 && strings.Contains(text, strings.ToLower(svc)) {
				e.Names = append(e.Names, svc)
			}
		}
	}
	first := g.Events[0].Timestamp
	for i := range g.Events {
		if !first.IsZero() && !g.Events[i].Timestamp.IsZero() {
			g.Events[i].Clock = g.Events[i].Timestamp.Sub(first)
		}
	}
	g.LikelyRoot = likelyRoot(s, g.Events, sortedRoots, errs)
	if g.LikelyRoot >= 0 {
		g.Events[g.LikelyRoot].LikelyRoot = true
		g.LikelyRootIssue = g.Events[g.LikelyRoot].IssueID
	}
	return g
}

// likelyRoot picks the likeliest root cause among a group's incidents, by
// the evidence in turn: an error on the trace's root span runs above every
// other, and one that names another service of the group failed after
// calling it; each is passed over while others remain. Among the rest the
// strategy decides (with no link known, Deepest and Earliest go by the
// hosts' clocks). It returns -1 if the strategy fails.
func likelyRoot(s rootcause.Strategy, evs []GroupEvent, roots []int, errs []rootcause.Error) int {
	cand := make([]int, len(evs))
	for i := range cand {
		cand[i] = i
	}
	for _, upstream := range []func(GroupEvent) bool{
		func(e GroupEvent) bool { return e.OnRootSpan },
		func(e GroupEvent) bool { return len(e.Names) > 0 },
	} {
		if rest := slices.DeleteFunc(slices.Clone(cand), func(i int) bool { return upstream(evs[i]) }); len(rest) > 0 {
			cand = rest
		}
	}
	sub := make([]rootcause.Error, len(cand))
	for i, c := range cand {
		sub[i] = errs[roots[c]]
	}
	found, err := rootcause.Incidents(rootcause.OnePerTrace(s), sub)
	if err != nil || len(found) != 1 || found[0].Root < 0 {
		return -1
	}
	return cand[found[0].Root]
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
	return fmt.Sprintf("%d events, %d traces, %d known cascades, %d traces link not known, %d known and %d likely symptom issues",
		r.EventsRead, r.Traces, r.KnownCascades, r.TracesLinkNotKnown, len(r.KnownSymptoms), len(r.LikelySymptoms))
}
