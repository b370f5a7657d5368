package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

// rootCauseType is the exception type of the root cause, as Sentry shows it.
const rootCauseType = "*main.PaymentDeclined"

// column is one mode's column of the table.
type column struct {
	mode             mode
	requests, failed int
	captured, sent   uint64 // summed over the Sentry clients
	// dedup sums the clients' dedup stats; nil in the baseline.
	dedup    *dedup.Stats
	perStats map[string]dedup.Stats
	order    []string

	// What the endpoint received; known is false when the events went to a
	// real Sentry, which this program cannot read back.
	known      bool
	received   int
	issues     map[string]int // events per issue
	rootCauses int            // failed requests whose root cause was received
	noise      int            // events received that are not a root cause
}

func (r *result) column() column {
	c := column{mode: r.mode, requests: r.requests, failed: r.failed, order: r.order}
	for _, n := range r.captured {
		c.captured += n
	}
	c.sent = c.captured
	if len(r.stats) > 0 {
		var sum dedup.Stats
		for _, s := range r.stats {
			sum.Received += s.Received
			sum.Emitted += s.Emitted
			sum.Suppressed += s.Suppressed
			sum.Pending += s.Pending
			sum.Cascades += s.Cascades
		}
		c.dedup = &sum
		c.perStats = r.stats
		c.sent = sum.Emitted
	}
	return c
}

// receive records the events the endpoint received for this column.
func (c *column) receive(events []fakesentry.Event) {
	c.known = true
	c.received = len(events)
	c.issues = map[string]int{}
	traces := map[string]bool{}
	for _, ev := range events {
		c.issues[issueOf(ev.Event)]++
		if isRootCause(ev.Event) {
			traces[ev.Event.Tags[sentryotel.TagTraceID]] = true
		} else {
			c.noise++
		}
	}
	c.rootCauses = len(traces)
}

// isRootCause reports whether ev is payment's PaymentDeclined.
func isRootCause(ev *sentry.Event) bool {
	return ev.Tags[sentryotel.TagServiceName] == payment && exceptionType(ev) == rootCauseType
}

// exceptionType is the type Sentry shows in the issue title: the outermost
// exception's, which sentry-go lists last.
func exceptionType(ev *sentry.Event) string {
	if n := len(ev.Exception); n > 0 {
		return ev.Exception[n-1].Type
	}
	return ""
}

// issueOf names the issue Sentry would file ev under. Events with the same
// fingerprint make one issue. Sentry's default grouping, which the
// fingerprint "{{ default }}" stands for, hashes the stack trace and the
// exception type; here it is approximated by the service and the exception
// type, which is what tells the demo's errors apart.
func issueOf(ev *sentry.Event) string {
	def := defaultIssueOf(ev)
	if len(ev.Fingerprint) == 0 {
		return def
	}
	parts := make([]string, len(ev.Fingerprint))
	for i, p := range ev.Fingerprint {
		if strings.ReplaceAll(p, " ", "") == "{{default}}" {
			p = def
		}
		parts[i] = p
	}
	return strings.Join(parts, " + ")
}

// defaultIssueOf approximates Sentry's default grouping of ev.
func defaultIssueOf(ev *sentry.Event) string {
	return ev.Tags[sentryotel.TagServiceName] + " " + exceptionType(ev)
}

// printTable prints one column per mode.
func printTable(w io.Writer, cols []column, remote bool) {
	row := func(label string, cell func(c column) string) {
		fmt.Fprintf(w, "%-34s", label)
		for _, c := range cols {
			fmt.Fprintf(w, " %14s", cell(c))
		}
		fmt.Fprintln(w)
	}
	unknown := func(f func(c column) string) func(c column) string {
		return func(c column) string {
			if !c.known {
				return "n/a"
			}
			return f(c)
		}
	}
	withDedup := func(f func(s *dedup.Stats) string) func(c column) string {
		return func(c column) string {
			if c.dedup == nil {
				return "-"
			}
			return f(c.dedup)
		}
	}
	row("", func(c column) string { return string(c.mode) })
	row("requests", func(c column) string { return fmt.Sprint(c.requests) })
	row("failed requests", func(c column) string { return fmt.Sprint(c.failed) })
	row("errors captured by the services", func(c column) string { return fmt.Sprint(c.captured) })
	row("events sent to Sentry", func(c column) string { return fmt.Sprint(c.sent) })
	row("events Sentry received", unknown(func(c column) string { return fmt.Sprint(c.received) }))
	row("issues they would open", unknown(func(c column) string { return fmt.Sprint(len(c.issues)) }))
	row("root causes named correctly", unknown(func(c column) string { return fmt.Sprintf("%d/%d", c.rootCauses, c.failed) }))
	row("events that are cascades (noise)", unknown(func(c column) string { return fmt.Sprint(c.noise) }))
	row("cascades suppressed", withDedup(func(s *dedup.Stats) string { return fmt.Sprint(s.Suppressed) }))
	// Cascades that a caller knew of from its downstream's Tracedup-Reported
	// header: suppressed, or sent tagged with -send-cascades.
	row("cascades known from the header", withDedup(func(s *dedup.Stats) string { return fmt.Sprint(s.Cascades) }))
	row("dedup received/emitted/suppressed", withDedup(func(s *dedup.Stats) string {
		return fmt.Sprintf("%d/%d/%d", s.Received, s.Emitted, s.Suppressed)
	}))

	fmt.Fprintln(w)
	if remote {
		fmt.Fprintln(w, "Events went to your Sentry, which this program cannot read back: the rows")
		fmt.Fprintln(w, "after \"events sent to Sentry\" need the embedded endpoint (run without -dsn).")
		return
	}
	fmt.Fprintln(w, "Issues: events with the same fingerprint; Sentry's default grouping is approximated")
	fmt.Fprintln(w, "by (service, exception type): the baseline's three issues fire three alerts for one")
	fmt.Fprintln(w, "cause, and two of them hold nothing but cascades.")
}

// printDetails prints each client's dedup stats and the issues, for -v.
func printDetails(w io.Writer, cols []column) {
	for _, c := range cols {
		fmt.Fprintf(w, "\n%s:\n", c.mode)
		for _, name := range c.order {
			s, ok := c.perStats[name]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "  %-9s dedup received %d, emitted %d, suppressed %d (cascades %d, late %d), pending %d\n",
				name, s.Received, s.Emitted, s.Suppressed, s.Cascades, s.Late, s.Pending)
		}
		if !c.known {
			continue
		}
		keys := slices.Sorted(maps.Keys(c.issues))
		const show = 5
		for i, k := range keys {
			if i == show {
				fmt.Fprintf(w, "  ... and %d more issues\n", len(keys)-show)
				break
			}
			fmt.Fprintf(w, "  issue %-60s %d events\n", k, c.issues[k])
		}
	}
}
