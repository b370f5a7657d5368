package workload

import (
	"regexp"
	"slices"
	"time"

	"github.com/getsentry/sentry-go"
)

// Report is one error report that reached Sentry, as the metrics see it.
type Report struct {
	// Truth is the captured event the report names as its error.
	Truth *Event
	// Issue is the Sentry issue it is filed under (see Issue).
	Issue string
	// At is when it reached Sentry, in virtual time.
	At time.Duration
}

// Reports turns what a Run sent into Reports, leaving out info messages and
// events with no ground truth.
func Reports(o *Outcome) []Report {
	var out []Report
	for _, s := range o.Sent {
		if s.Truth == nil || s.Truth.Role == Info {
			continue
		}
		out = append(out, Report{Truth: s.Truth, Issue: Issue(s.Event), At: s.At})
	}
	return out
}

// Metrics score a set of Reports against a Plan's ground truth.
type Metrics struct {
	// EventsIn counts the error events the services captured.
	EventsIn int `json:"events_in"`
	// Sent counts the error reports that reached Sentry.
	Sent int `json:"sent"`
	// Reduction is 1 - Sent/EventsIn.
	Reduction float64 `json:"reduction"`
	// Incidents counts the incidents: the physical limit of Sent, one
	// report per incident.
	Incidents int `json:"incidents"`
	// Limit is 1 - Incidents/EventsIn, the best Reduction that loses none.
	Limit float64 `json:"limit"`
	// Recalled counts the incidents whose origin failure (its Origin event,
	// or a Repeat of it) was sent.
	Recalled int `json:"recalled"`
	// Recall is Recalled/Incidents.
	Recall float64 `json:"recall"`
	// Precision is Recalled/Sent: the share of reports that are an
	// incident's origin, counting each incident once.
	Precision float64 `json:"precision"`
	// Hidden counts the incidents of which no report at all reached Sentry.
	Hidden int `json:"hidden"`
	// HiddenOrigins counts the hidden incidents by their origin's exception
	// type: what kind of failure went unseen.
	HiddenOrigins map[string]int `json:"hidden_origins,omitempty"`
	// Named counts the incidents whose first report names the origin
	// failure (service and exception type of its Origin).
	Named int `json:"named"`
	// SplitTraces counts the requests that got more reports than they have
	// incidents.
	SplitTraces int `json:"split_traces"`
	// DelayP50 and DelayP99 are percentiles, over the incidents reported,
	// of the time from the origin's capture to the incident's first report.
	DelayP50 time.Duration `json:"delay_p50"`
	DelayP99 time.Duration `json:"delay_p99"`
	// Issues counts the distinct Issue values of the reports.
	Issues int `json:"issues"`
}

// Score measures reports against plan.
func Score(plan *Plan, reports []Report) Metrics {
	m := Metrics{Incidents: len(plan.Incidents), Sent: len(reports)}
	for _, ev := range plan.Events {
		if ev.Role != Info {
			m.EventsIn++
		}
	}
	if m.EventsIn > 0 {
		m.Reduction = 1 - float64(m.Sent)/float64(m.EventsIn)
		m.Limit = 1 - float64(m.Incidents)/float64(m.EventsIn)
	}
	first := map[int]Report{}
	recalled := map[int]bool{}
	issues := map[string]bool{}
	perRequest := map[int]int{}
	for _, r := range reports {
		issues[r.Issue] = true
		inc := r.Truth.Incident
		perRequest[r.Truth.Request]++
		if f, ok := first[inc]; !ok || r.At < f.At {
			first[inc] = r
		}
		if r.Truth.Role == Origin || r.Truth.Role == Repeat {
			recalled[inc] = true
		}
	}
	m.Issues = len(issues)
	m.Recalled = len(recalled)
	if m.Incidents > 0 {
		m.Recall = float64(m.Recalled) / float64(m.Incidents)
	}
	if m.Sent > 0 {
		m.Precision = float64(m.Recalled) / float64(m.Sent)
	}
	incidents := map[int]int{}
	var delays []time.Duration
	for _, inc := range plan.Incidents {
		incidents[inc.Request]++
		f, ok := first[inc.ID]
		if !ok {
			m.Hidden++
			if m.HiddenOrigins == nil {
				m.HiddenOrigins = map[string]int{}
			}
			m.HiddenOrigins[inc.Origin.Type]++
			continue
		}
		if f.Truth.Service == inc.Origin.Service && f.Truth.Type == inc.Origin.Type {
			m.Named++
		}
		delays = append(delays, f.At-inc.Origin.At)
	}
	for req, n := range perRequest {
		if n > incidents[req] {
			m.SplitTraces++
		}
	}
	m.DelayP50, m.DelayP99 = percentile(delays, 0.50), percentile(delays, 0.99)
	return m
}

// percentile is the nearest-rank percentile p of ds, 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Issue approximates the issue Sentry's default grouping files ev under, as
// examples/cascade does: the service (its service.name tag, else its server
// name) and the outermost exception's type. A message with no exception is
// grouped by its text with numbers and hex ids parameterized, as Sentry's
// message parameterization does. Fingerprints are ignored.
func Issue(ev *sentry.Event) string {
	service := ev.Tags["service.name"]
	if service == "" {
		service = ev.ServerName
	}
	if n := len(ev.Exception); n > 0 {
		return service + " " + ev.Exception[n-1].Type
	}
	return messageIssue(ev.Message)
}

var numbers = regexp.MustCompile(`\b(?:[0-9a-f]{8,}|[0-9]+)\b`)

// messageIssue is the issue of a message event with text msg.
func messageIssue(msg string) string {
	return "message " + numbers.ReplaceAllString(msg, "<int>")
}
