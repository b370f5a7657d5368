// Command dedup-report is the post-hoc duplicate report: it reads the error
// events of the last -since from the Sentry web API, groups them by trace,
// names each cascade's root cause, and lists the issues that only ever appear
// as symptoms of another, the ones a team could merge or mute.
//
//	SENTRY_AUTH_TOKEN=... go run ./examples/dedup-report -org acme -project gateway,order,payment -since 24h
//
// The token is read from SENTRY_AUTH_TOKEN and never printed.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tracedup/tracedup/internal/report"
	"github.com/tracedup/tracedup/internal/sentryapi"
	"github.com/tracedup/tracedup/rootcause"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the API or the network failed
	exitUsage = 2 // bad flags or environment
)

const tokenEnv = "SENTRY_AUTH_TOKEN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	url, org    string
	projects    []string
	since       time.Duration
	sinceText   string // -since as given
	json        bool
	read        sentryapi.Read
	strategy    rootcause.Strategy
	maxCascades int
	linkTraces  int
}

// run is the whole command; main only wires it to the process.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "dedup-report: %v\n", err)
		return exitUsage
	}
	token := strings.TrimSpace(env(tokenEnv))
	if token == "" {
		fmt.Fprintf(stderr, "dedup-report: %s is not set: %s; then export it\n", tokenEnv, sentryapi.TokenHint)
		return exitUsage
	}

	notice := func(msg string) { fmt.Fprintf(stderr, "dedup-report: note: %s\n", msg) }
	client, err := sentryapi.New(opts.url, token,
		sentryapi.WithUserAgent("tracedup-dedup-report"),
		sentryapi.WithProgress(func(p sentryapi.Progress) {
			fmt.Fprintf(stderr, "reading %s (%s): page %d, %d error events", p.Endpoint, p.Read, p.Pages, p.Events)
			if p.Waited > 0 {
				fmt.Fprintf(stderr, " (waited %s for the rate limit)", p.Waited.Round(time.Second))
			}
			fmt.Fprintln(stderr)
		}),
		sentryapi.WithNotice(notice))
	if err != nil {
		fmt.Fprintf(stderr, "dedup-report: -url: %v\n", err)
		return exitUsage
	}
	end := time.Now().UTC().Truncate(time.Second)
	apiEvents, err := client.Events(ctx, sentryapi.Query{
		Org: opts.org, Projects: opts.projects, Start: end.Add(-opts.since), End: end, Read: opts.read,
	})
	if err != nil {
		fmt.Fprintf(stderr, "dedup-report: %v\n", err)
		return exitError
	}
	events := make([]report.Event, len(apiEvents))
	errorProjects := map[string][]string{}
	for i, e := range apiEvents {
		events[i] = reportEvent(e)
		if id := events[i].TraceID; id != "" && e.Project != "" && !slices.Contains(errorProjects[id], e.Project) {
			errorProjects[id] = append(errorProjects[id], e.Project)
		}
	}
	var links map[string]report.TraceLinks
	sum := report.Links{Limit: opts.linkTraces, Notes: []string{}}
	if need := report.NeedLinks(events, opts.strategy); len(need) > 0 {
		sum.TracesNeedingLinks = len(need)
		if opts.linkTraces > 0 {
			lr := &linkReader{client: client, org: opts.org, projects: opts.projects, start: end.Add(-opts.since), end: end, notice: notice}
			if links, sum, err = lr.read(ctx, need, opts.linkTraces, errorProjects); err != nil {
				fmt.Fprintf(stderr, "dedup-report: %v\n", err)
				return exitError
			}
		} else {
			sum.Notes = append(sum.Notes, "-link-traces 0: no transactions read")
		}
	}
	r := report.Build(events, opts.strategy, links)
	r.Links = sum

	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(jsonReport{
			Org: opts.org, Projects: opts.projects, Since: opts.sinceText,
			Start: end.Add(-opts.since), End: end, Report: r,
		})
	} else {
		err = writeTable(stdout, opts, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dedup-report: writing the report: %v\n", err)
		return exitError
	}
	return exitOK
}

// jsonReport is the -json output: the report and what it covers.
type jsonReport struct {
	Org      string    `json:"org"`
	Projects []string  `json:"projects"` // empty: organisation-wide
	Since    string    `json:"since"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	*report.Report
}

// reportEvent is what the report sees of an event read from the API. An
// event without the service.name tag (its service does not run tracedup's
// hook) is attributed to its project, the nearest thing Sentry knows.
func reportEvent(e sentryapi.Event) report.Event {
	typ, msg := e.Exception()
	return report.Event{
		Error: rootcause.Error{
			EventID: e.EventID, TraceID: e.TraceID(), SpanID: e.SpanID(), ParentSpanID: e.ParentSpanID(),
			Service: cmp.Or(e.Service(), e.Project), ExceptionType: typ, Message: msg, Timestamp: e.DateCreated,
		},
		IssueID: e.GroupID, Project: e.Project, Title: e.Title,
	}
}

const usage = `Usage: SENTRY_AUTH_TOKEN=<token> dedup-report -org <org> [-project p1,p2,...] [flags]

Reads the error events of the last -since from the Sentry web API, groups them
by trace (the otel.trace_id tag, else the event's trace context, so services
without tracedup's hook count too), splits each trace into incidents by the
rule the deduplicator uses, names each incident's root cause, and lists the
issues that only ever appear as symptoms of another: the ones to merge into
their root cause's issue, or to mute.

An error is known to be a symptom of another only where span data links
them: the events' own parent spans, or the span tree of the trace's
transactions, which services with Sentry tracing send (any SDK): a callee's
transaction names the caller's client span as its parent. Where a trace's
errors form several incidents by the events alone, the report reads that
trace's transactions (Discover lists them, org:read; each one's spans come
from its event, project:read): at most -link-traces traces, a sample past it.
Errors of one trace whose link is still not known are shown together as
"same request, link not known", with the evidence to judge them (services,
exception types, order by each host's clock, which are on the trace's root
span or called from another service) and the likely root cause. The issues
that only appear as symptoms are split the same way: known symptoms, and
likely ones, that in every trace where they appear came with another issue
downstream. (-per-trace, which made each trace one incident, is gone: the
"link not known" groups show what it found, and say so.)

-project takes one project slug or a comma-separated list; without it, every
project of -org the token can see is read. A cascade that crosses projects is
only seen whole when all its projects are read. -read chooses how:
  auto      Discover where the token and the plan allow, else full events
  discover  the organisation's Discover events (scope org:read), 100 a page,
            project by project where the plan cannot query several at once
  full      each project's full events (scope project:read), 10 a page
  tags      each project's event list, 100 a page, but trace ids only from
            tracedup's otel.trace_id tag: other services' errors go unseen
Sentry allows about 60 requests a minute; the progress line says which read
runs, and a note says when it changes course.

The token comes from SENTRY_AUTH_TOKEN and is never printed. Which token:
TOKEN_HINT.

Progress goes to stderr, the report to stdout. Exit status: 0 done, 1 Sentry
or the network failed, 2 bad flags or no token.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("dedup-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, strings.Replace(usage, "TOKEN_HINT", sentryapi.TokenHint, 1))
		fs.PrintDefaults()
	}
	o := &options{}
	var project, since, strategy, demote, read string
	fs.StringVar(&o.url, "url", "https://sentry.io", "Sentry `URL`: https://sentry.io, a regional https://de.sentry.io, or a self-hosted instance")
	fs.StringVar(&o.org, "org", "", "organisation `slug` (required)")
	fs.StringVar(&project, "project", "", "project `slugs`, comma-separated; empty reads every project of -org")
	fs.StringVar(&since, "since", "24h", "how far back to read: a Go `duration` (90m, 24h) or days (7d)")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON on stdout")
	fs.StringVar(&strategy, "strategy", "default", "root-cause `strategy`, or a comma-separated list asked in turn (FirstOf):"+strategyHelp())
	fs.StringVar(&demote, "demote", "", "exception `types`, comma-separated, that wrap another service's failure (DownstreamError): chosen only when nothing else is (DemoteTypes)")
	fs.IntVar(&o.linkTraces, "link-traces", defaultLinkTraces, "read the transactions of at most `N` traces whose links are not known, a sample past it; 0 reads none")
	fs.StringVar(&read, "read", "auto", "how to read the events: `auto`, discover, full or tags (see above)")
	fs.IntVar(&o.maxCascades, "max-cascades", 20, "cascades to list in the table (all of them are counted, and all are in -json)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q; see -help", fs.Args())
	}
	if o.org = strings.TrimSpace(o.org); o.org == "" {
		return nil, errors.New("-org is required: the organisation slug, as in https://sentry.io/organizations/<slug>/")
	}
	for _, p := range strings.Split(project, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.projects = append(o.projects, p)
		}
	}
	d, err := parseSince(since)
	if err != nil {
		return nil, err
	}
	o.since, o.sinceText = d, strings.TrimSpace(since)
	if o.read, err = sentryapi.ParseRead(read); err != nil {
		return nil, fmt.Errorf("-read %q: %w", read, err)
	}
	if o.strategy, err = parseStrategy(strategy, demote); err != nil {
		return nil, err
	}
	if o.maxCascades < 0 {
		return nil, errors.New("-max-cascades must not be negative")
	}
	if o.linkTraces < 0 {
		return nil, errors.New("-link-traces must not be negative")
	}
	return o, nil
}

// parseSince reads a positive Go duration, or whole days ("7d").
func parseSince(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
		if n > 366 {
			err = errors.New("too long")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("-since %q: want a positive duration such as 90m, 24h or 7d", s)
	}
	return d, nil
}

// strategyEntry is one -strategy name.
type strategyEntry struct {
	name string
	make func() rootcause.Strategy
	desc string
}

// strategies are the -strategy names: the one table that both parsing and
// the help read.
var strategies = []strategyEntry{
	{"default", rootcause.Default, "the library's default"},
	{"deepest", rootcause.Deepest, "the error deepest in the span tree; needs parent span ids"},
	{"earliest", rootcause.Earliest, "the earliest timestamp; trusts the hosts' clocks"},
	{"nonrootfirst", rootcause.NonRootFirst, "the original article's heuristic: the earliest error not on the root span"},
}

func strategyNames() string {
	names := make([]string, len(strategies))
	for i, s := range strategies {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func strategyHelp() string {
	var b strings.Builder
	for _, s := range strategies {
		fmt.Fprintf(&b, "\n  %-13s%s", s.name, s.desc)
	}
	return b.String()
}

// parseStrategy builds the strategy of -strategy and -demote.
func parseStrategy(names, demote string) (rootcause.Strategy, error) {
	var list []rootcause.Strategy
	for _, n := range strings.Split(names, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		n = strings.NewReplacer("-", "", "_", "").Replace(n)
		if n == "" {
			continue
		}
		i := slices.IndexFunc(strategies, func(s strategyEntry) bool { return s.name == n })
		if i < 0 {
			return nil, fmt.Errorf("-strategy %q: want one of %s, or a comma-separated list of them", n, strategyNames())
		}
		list = append(list, strategies[i].make())
	}
	var s rootcause.Strategy
	switch len(list) {
	case 0:
		s = rootcause.Default()
	case 1:
		s = list[0]
	default:
		s = rootcause.FirstOf(list...)
	}
	var types []string
	for _, t := range strings.Split(demote, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	if len(types) > 0 {
		s = rootcause.DemoteTypes(s, types...)
	}
	return s, nil
}

// writeTable writes the human report.
func writeTable(w io.Writer, o *options, r *report.Report) error {
	scope := o.org + " (all projects)"
	if len(o.projects) > 0 {
		scope = o.org + "/" + strings.Join(o.projects, ",")
	}
	b := &errWriter{w: w}
	b.printf("Duplicate report for %s, last %s, strategy %s\n\n", scope, o.sinceText, r.Strategy)

	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "error events read\t%d\n", r.EventsRead)
	fmt.Fprintf(tw, "  without a trace id\t%d\n", r.EventsWithoutTrace)
	fmt.Fprintf(tw, "traces\t%d\n", r.Traces)
	fmt.Fprintf(tw, "incidents by known links\t%d\t(the deduplicator would send one event each)\n", r.Incidents)
	fmt.Fprintf(tw, "known cascades\t%d\t(in %d traces; %d known duplicate events)\n", r.KnownCascades, r.TracesWithKnownCascades, r.KnownDuplicateEvents)
	fmt.Fprintf(tw, "traces, link not known\t%d\t(same request: %d errors, %d likely duplicates)\n", r.TracesLinkNotKnown, r.EventsLinkNotKnown, r.LikelyDuplicateEvents)
	l := r.Links
	sampled := ""
	if l.Sampled {
		sampled = ", sampled"
	}
	fmt.Fprintf(tw, "traces with transactions\t%d\t(of %d read%s, %d needing links; %d transactions read)\n",
		l.TracesWithTransactions, l.TracesRead, sampled, l.TracesNeedingLinks, l.TransactionsRead)
	if r.StrategyFailures > 0 {
		fmt.Fprintf(tw, "strategy failures\t%d\t(incidents without a root cause)\n", r.StrategyFailures)
	}
	tw.Flush()

	if len(r.Cascades) > 0 {
		b.printf("\nKnown cascades: span links say which error followed from which\n")
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TRACE\tSERVICE\tISSUE\tEVENT\tEXCEPTION\tMESSAGE")
		for i, c := range r.Cascades {
			if i == o.maxCascades {
				fmt.Fprintf(tw, "… and %d more (all of them are in -json)\n", len(r.Cascades)-i)
				break
			}
			for j, e := range c.Events {
				trace := ""
				if j == 0 {
					trace = c.TraceID
				}
				// The marker is a cell only where there is one, so that
				// no line ends in padding.
				root := ""
				if e.RootCause {
					root = "\t<- root cause"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", trace, orDash(e.Service), orDash(e.IssueID),
					short(e.EventID, 9), orDash(e.ExceptionType), short(e.Message, 40), root)
			}
			if c.RootCause < 0 {
				fmt.Fprintln(tw, "\t(the strategy failed on this trace: no root cause)")
			}
		}
		tw.Flush()
	}

	if len(r.SameRequest) > 0 {
		b.printf("\nSame request, link not known: errors of one trace that no span link ties; judge by the evidence\n")
		b.printf("(CLOCK: from the trace's first error, by each host's own clock; SPAN: where the error was captured)\n")
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TRACE\tCLOCK\tSERVICE\tISSUE\tEVENT\tEXCEPTION\tMESSAGE\tSPAN")
		for i, g := range r.SameRequest {
			if i == o.maxCascades {
				fmt.Fprintf(tw, "… and %d more (all of them are in -json)\n", len(r.SameRequest)-i)
				break
			}
			for j, e := range g.Events {
				trace := ""
				if j == 0 {
					trace = g.TraceID
				}
				mark := ""
				if e.LikelyRoot {
					mark = "\t<- likely root cause"
				}
				fmt.Fprintf(tw, "%s\t+%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n", trace, e.Clock.Round(time.Millisecond), orDash(e.Service),
					orDash(e.IssueID), short(e.EventID, 9), orDash(e.ExceptionType), short(e.Message, 40), where(e), mark)
			}
			fmt.Fprintf(tw, "\t(%s)\n", g.Why)
		}
		tw.Flush()
	}

	b.printf("\nKnown symptoms: in every trace where they appear, a span link makes them symptoms; merge them into their root cause's issue, or mute them\n")
	if len(r.KnownSymptoms) == 0 {
		b.printf("  none\n")
	} else {
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ISSUE\tTITLE\tSERVICES\tTRACES\tEVENTS\tKNOWN SYMPTOM OF")
		for _, s := range r.KnownSymptoms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.IssueID, short(s.Title, 60), orDash(strings.Join(s.Services, ",")),
				s.Traces, s.Events, roots(s.SymptomOf))
		}
		tw.Flush()
	}

	b.printf("\nLikely symptoms: never a root cause, and in every trace where they appear another issue came with them downstream, the link not always known\n")
	if len(r.LikelySymptoms) == 0 {
		b.printf("  none\n")
		return b.err
	}
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUE\tTITLE\tSERVICES\tTRACES\tLINK KNOWN IN\tCOMES WITH, DOWNSTREAM")
	for _, s := range r.LikelySymptoms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.IssueID, short(s.Title, 60), orDash(strings.Join(s.Services, ",")),
			s.Traces, s.KnownTraces, roots(s.ComesWith))
	}
	tw.Flush()
	return b.err
}

// roots lists root-cause issues with their trace counts.
func roots(l []report.RootIssue) string {
	var out []string
	for _, ri := range l {
		out = append(out, fmt.Sprintf("%s %q (%d traces)", ri.IssueID, short(ri.Title, 50), ri.Traces))
	}
	return strings.Join(out, "; ")
}

// where says what is visible of an error's span.
func where(e report.GroupEvent) string {
	switch {
	case len(e.Below) > 0:
		return fmt.Sprintf("encloses %d of these", len(e.Below))
	case e.OnRootSpan:
		return "trace's root span"
	case e.ParentElsewhere:
		return "called from another span"
	case e.SpanID == "":
		return "-"
	}
	return "parent not known"
}

// short cuts s to n runes, marking the cut.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ") // one line: no tabs or newlines in a cell
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error, so the table code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
