package report

import (
	"cmp"
	"slices"
)

// tally gathers, across traces, which issues were ever a root cause (known,
// or the likely one of a group) and where the others appeared as symptoms,
// known or likely.
type tally struct {
	titles   map[string]string
	everRoot map[string]bool // issue -> root cause somewhere
	failed   map[string]bool // issue -> in an incident the strategy failed on
	symptom  map[string]*symptomTally
}

type symptomTally struct {
	events   int
	services []string
	known    map[string]bool            // traces where it was a known symptom
	likely   map[string]bool            // traces where it only came with another issue
	with     map[string]map[string]bool // root issue -> traces
}

func newTally() *tally {
	return &tally{titles: map[string]string{}, everRoot: map[string]bool{}, failed: map[string]bool{}, symptom: map[string]*symptomTally{}}
}

func (t *tally) title(e Event) {
	if t.titles[e.IssueID] == "" {
		t.titles[e.IssueID] = e.Title
	}
}

func (t *tally) of(issue string) *symptomTally {
	s := t.symptom[issue]
	if s == nil {
		s = &symptomTally{known: map[string]bool{}, likely: map[string]bool{}, with: map[string]map[string]bool{}}
		t.symptom[issue] = s
	}
	return s
}

func (s *symptomTally) add(trace, root string, e Event, likely bool) {
	s.events++
	s.services = appendNew(s.services, e.Service)
	if likely {
		s.likely[trace] = true
	} else {
		s.known[trace] = true
	}
	if s.with[root] == nil {
		s.with[root] = map[string]bool{}
	}
	s.with[root][trace] = true
}

// incident records the known part of one incident: its root cause, and its
// other errors as known symptoms. It returns the root's issue, "" when the
// strategy failed.
func (t *tally) incident(trace string, evs []Event, inc incident) string {
	if inc.Root < 0 {
		for _, m := range inc.Members {
			t.failed[evs[m].IssueID] = true
		}
		return ""
	}
	root := evs[inc.Root].IssueID
	for _, m := range inc.Members {
		if e := evs[m]; m != inc.Root && e.IssueID != root && e.IssueID != "" {
			t.of(e.IssueID).add(trace, root, e, false)
		}
	}
	return root
}

// known records a trace whose incidents are all known: each root cause is
// one.
func (t *tally) known(trace string, evs []Event, incs []incident) {
	for _, inc := range incs {
		if root := t.incident(trace, evs, inc); root != "" {
			t.everRoot[root] = true
		}
	}
}

// unknown records a trace of Group g: the likely root's incident is a root
// cause; the other incidents' root causes came with it, link not known.
func (t *tally) unknown(trace string, evs []Event, incs []incident, g Group) {
	for _, inc := range incs {
		root := t.incident(trace, evs, inc)
		if root == "" {
			continue
		}
		switch e := evs[inc.Root]; {
		case g.LikelyRoot < 0:
			t.failed[root] = true
		case root == g.LikelyRootIssue:
			t.everRoot[root] = true
		default:
			t.of(root).add(trace, g.LikelyRootIssue, e, true)
		}
	}
}

// symptoms returns the issues that were symptoms and never a root cause:
// known where every appearance was a known symptom, likely otherwise. Most
// traces first.
func (t *tally) symptoms() ([]SymptomIssue, []LikelySymptom) {
	known, likely := []SymptomIssue{}, []LikelySymptom{}
	for issue, s := range t.symptom {
		if t.everRoot[issue] || t.failed[issue] || issue == "" {
			continue
		}
		traces := len(s.known)
		for tr := range s.likely {
			if !s.known[tr] {
				traces++
			}
		}
		var roots []RootIssue
		for root, trs := range s.with {
			roots = append(roots, RootIssue{IssueID: root, Title: t.titles[root], Traces: len(trs)})
		}
		slices.SortFunc(roots, func(a, b RootIssue) int {
			return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
		})
		if len(s.likely) == 0 {
			known = append(known, SymptomIssue{IssueID: issue, Title: t.titles[issue], Services: s.services, Traces: traces, Events: s.events, SymptomOf: roots})
			continue
		}
		likely = append(likely, LikelySymptom{IssueID: issue, Title: t.titles[issue], Services: s.services, Traces: traces,
			KnownTraces: len(s.known), Events: s.events, ComesWith: roots})
	}
	slices.SortFunc(known, func(a, b SymptomIssue) int {
		return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
	})
	slices.SortFunc(likely, func(a, b LikelySymptom) int {
		return cmp.Or(cmp.Compare(b.Traces, a.Traces), cmp.Compare(a.IssueID, b.IssueID))
	})
	return known, likely
}
