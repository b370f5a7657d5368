package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/tracedup/tracedup/internal/report"
	"github.com/tracedup/tracedup/internal/sentryapi"
)

// Bounds of the links read from transactions.
const (
	// defaultLinkTraces is -link-traces: at most this many traces get their
	// transactions read. Each costs one Discover request and one request per
	// transaction (three for a three-service request): about a hundred
	// requests, under two minutes at Sentry's usual limits.
	defaultLinkTraces = 25
	// maxTransactionsPerTrace bounds the transactions read in full in one
	// trace; a trace with more is read in part, and said so.
	maxTransactionsPerTrace = 20
	// transactionLead is how long before -since a trace's transactions are
	// looked for: a transaction starts before the errors it holds.
	transactionLead = time.Hour
)

// linkReader reads the span links of traces from their transactions.
type linkReader struct {
	client   *sentryapi.Client
	org      string
	projects []string // -project; empty: every project
	start    time.Time
	end      time.Time
	notice   func(string)

	projectIDs map[string]string // slug -> id, once needed
	perProject bool              // the plan cannot query several projects at once
	noSpans    string            // why transactions' spans are no longer asked for
}

// sample returns which of ids to read, at most limit of them: all when they
// fit, else the ones whose ids hash lowest, a sample spread over the whole
// window that the same data always draws the same way.
func sample(ids []string, limit int) []string {
	if len(ids) <= limit {
		return ids
	}
	hash := func(id string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(id))
		return h.Sum64()
	}
	picked := slices.Clone(ids)
	slices.SortFunc(picked, func(a, b string) int { return cmp.Compare(hash(a), hash(b)) })
	picked = picked[:limit]
	keep := map[string]bool{}
	for _, id := range picked {
		keep[id] = true
	}
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !keep[id] })
}

// read reads the links of the traces that need them (at most limit, sampled
// past it) and returns them by trace id, with what was read. errorProjects
// names, per trace, the projects of its errors: where Discover reads one
// project at a time, those are the projects searched. A failure of the API
// ends the reading with a note; only the context's end is an error.
func (lr *linkReader) read(ctx context.Context, need []string, limit int, errorProjects map[string][]string) (map[string]report.TraceLinks, report.Links, error) {
	sum := report.Links{TracesNeedingLinks: len(need), Limit: limit, Notes: []string{}}
	note := func(msg string) {
		sum.Notes = append(sum.Notes, msg)
		lr.notice(msg)
	}
	links := map[string]report.TraceLinks{}
	picked := sample(need, limit)
	if len(picked) < len(need) {
		sum.Sampled = true
		note(fmt.Sprintf("%d traces hold errors whose links are not known; reading the transactions of %d of the %d traces (-link-traces %d), sampled by trace id; the other %d stay \"link not known\"",
			len(need), len(picked), len(need), limit, len(need)-len(picked)))
	}
	read := map[string]bool{}
	for _, id := range picked {
		read[id] = true
	}
	for _, id := range need {
		if !read[id] {
			links[id] = report.TraceLinks{Why: fmt.Sprintf("transactions not read: the sample of -link-traces %d did not draw this trace", limit)}
		}
	}
	var stopped string
	for _, id := range picked {
		if stopped != "" {
			links[id] = report.TraceLinks{Why: stopped}
			continue
		}
		txs, err := lr.transactions(ctx, id, errorProjects[id])
		if ctx.Err() != nil {
			return links, sum, ctx.Err()
		}
		if err != nil {
			stopped = "transactions not read: " + lr.explain(err)
			note("no links from transactions: " + lr.explain(err) + "; the traces' errors stay \"link not known\"")
			links[id] = report.TraceLinks{Why: stopped}
			continue
		}
		sum.TracesRead++
		if len(txs) == 0 {
			links[id] = report.TraceLinks{Why: "no transactions in Sentry for this trace: its services send none, or sampled it out"}
			continue
		}
		sum.TracesWithTransactions++
		if len(txs) > maxTransactionsPerTrace {
			note(fmt.Sprintf("trace %s has %d transactions; reading %d of them", id, len(txs), maxTransactionsPerTrace))
			txs = txs[:maxTransactionsPerTrace]
		}
		parents := map[string]string{}
		for _, tx := range txs {
			// Where a transaction's spans cannot be read, its own link
			// (from Discover) is still known; only its inner spans are not.
			full := tx
			if lr.noSpans == "" {
				var err error
				full, err = lr.client.TransactionSpans(ctx, lr.org, tx)
				switch {
				case ctx.Err() != nil:
					return links, sum, ctx.Err()
				case errors.Is(err, sentryapi.ErrForbidden) || errors.Is(err, sentryapi.ErrRateLimited):
					lr.noSpans = lr.explain(err)
					note("transactions' spans not read: " + lr.noSpans + "; only the links between transactions are used")
					full = tx
				case err != nil:
					note(fmt.Sprintf("transaction %s of trace %s: %s", tx.EventID, id, lr.explain(err)))
					full = tx
				default:
					sum.TransactionsRead++
				}
			}
			if full.SpanID != "" {
				parents[full.SpanID] = full.ParentSpanID
			}
			for _, s := range full.Spans {
				if _, ok := parents[s.SpanID]; !ok {
					parents[s.SpanID] = s.ParentSpanID
				}
			}
		}
		links[id] = report.TraceLinks{Parents: parents}
	}
	return links, sum, nil
}

// transactions lists one trace's transactions: across the projects read,
// or, where the plan reads Discover one project at a time, in the projects
// of the trace's errors.
func (lr *linkReader) transactions(ctx context.Context, trace string, errorProjects []string) ([]sentryapi.Transaction, error) {
	start := lr.start.Add(-transactionLead)
	if !lr.perProject {
		ids := []string{"-1"}
		if len(lr.projects) > 0 {
			if err := lr.loadProjectIDs(ctx); err != nil {
				return nil, err
			}
			ids = ids[:0]
			for _, p := range lr.projects {
				ids = append(ids, lr.projectIDs[p])
			}
		}
		txs, err := lr.client.TraceTransactions(ctx, lr.org, ids, trace, start, lr.end)
		if !errors.Is(err, sentryapi.ErrNoMultiProject) {
			return txs, err
		}
		lr.perProject = true
		lr.notice("the plan cannot query several projects at once: each trace's transactions are looked for in the projects of its errors, one request each")
	}
	if err := lr.loadProjectIDs(ctx); err != nil {
		return nil, err
	}
	var all []sentryapi.Transaction
	for _, p := range errorProjects {
		id, ok := lr.projectIDs[p]
		if !ok {
			continue
		}
		txs, err := lr.client.TraceTransactions(ctx, lr.org, []string{id}, trace, start, lr.end)
		if err != nil {
			return all, err
		}
		all = append(all, txs...)
	}
	return all, nil
}

func (lr *linkReader) loadProjectIDs(ctx context.Context) error {
	if lr.projectIDs != nil {
		return nil
	}
	ids, err := lr.client.ProjectIDs(ctx, lr.org, lr.projects)
	if err != nil {
		return err
	}
	lr.projectIDs = ids
	return nil
}

// explain says in a few words why transactions could not be read.
func (lr *linkReader) explain(err error) string {
	switch {
	case errors.Is(err, sentryapi.ErrNoDiscover):
		return "the plan has no Discover, through which transactions are listed"
	case errors.Is(err, sentryapi.ErrForbidden):
		return "the token cannot list transactions (Sentry answered 403; Discover needs " + sentryapi.ScopeOrganization +
			", a transaction's spans " + sentryapi.ScopeProject + ")"
	}
	return err.Error()
}
