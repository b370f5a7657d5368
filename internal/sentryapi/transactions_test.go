package sentryapi

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/sentryapitest"
)

// TestTransactionsOfATrace lists a trace's transactions through Discover and
// reads one in full through the event details endpoint, which answers a 429
// first: the wait is taken from Retry-After on the injected clock.
func TestTransactionsOfATrace(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tx := sentryapitest.Transaction{
		ID: "cccccccccccccccccccccccccccccc01", Project: "order", ProjectID: 2, Name: "POST /order", TraceID: trace,
		SpanID: "00f067aa0ba90211", Parent: "00f067aa0ba90102", Start: testNow.Add(-time.Hour), End: testNow.Add(-time.Hour + time.Second),
		Spans: []sentryapitest.Span{{ID: "00f067aa0ba90212", Parent: "00f067aa0ba90211", Op: "http.client"}},
	}
	other := tx
	other.ID, other.TraceID = "cccccccccccccccccccccccccccccc02", "4bf92f3577b34da6a3ce929d0e0e4737"
	var limited atomic.Bool
	fake := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch sentryapitest.Route(r.URL.Path) {
		case "organizations/{org}/events":
			q := r.URL.Query()
			assert.Equal(t, "event.type:transaction trace:"+trace, q.Get("query"))
			assert.Subset(t, q["field"], []string{"trace", "trace.span", "trace.parent_span", "project"})
			// A server that ignored the query: the other trace's row must
			// not be taken.
			sentryapitest.Pages(w, r, []any{sentryapitest.TransactionRow(tx), sentryapitest.TransactionRow(other)}, 100, sentryapitest.DiscoverBody)
		case "projects/{org}/{project}/events/{event_id}":
			if !limited.Swap(true) {
				w.Header().Set("Retry-After", "7")
				sentryapitest.RateLimited(w, 40, 1)
				return
			}
			sentryapitest.WriteJSON(w, sentryapitest.TransactionEvent(tx))
		default:
			sentryapitest.NotFound(w)
		}
	})
	s := newSleeper()
	c := newTestClient(t, fake.URL, s)
	txs, err := c.TraceTransactions(t.Context(), "acme", []string{"-1"}, trace, testNow.Add(-2*time.Hour), testNow)
	require.NoError(t, err)
	require.Len(t, txs, 1)
	assert.Equal(t, Transaction{EventID: tx.ID, Project: "order", Name: "POST /order", TraceID: trace, SpanID: tx.SpanID,
		ParentSpanID: tx.Parent, Timestamp: tx.End.Truncate(time.Second)}, txs[0])

	full, err := c.TransactionSpans(t.Context(), "acme", txs[0])
	require.NoError(t, err)
	assert.Equal(t, []Span{{SpanID: "00f067aa0ba90212", ParentSpanID: "00f067aa0ba90211", Op: "http.client"}}, full.Spans)
	assert.Equal(t, []time.Duration{7 * time.Second}, s.Waits(), "the 429 waited out on the injected clock")
	assert.Equal(t, 1, fake.MaxInflight("projects/{org}/{project}/events/{event_id}"))
}

// TestTransactionSpansRefusesAnError: an id that names an error event is not
// taken for a transaction.
func TestTransactionSpansRefusesAnError(t *testing.T) {
	fake := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		sentryapitest.WriteJSON(w, sentryapitest.FullEvent(sentryapitest.Event{ID: "dd", Issue: "1", Project: "order", Time: testNow}))
	})
	c := newTestClient(t, fake.URL, newSleeper())
	_, err := c.TransactionSpans(t.Context(), "acme", Transaction{EventID: "dd", Project: "order"})
	assert.ErrorIs(t, err, ErrMalformed)
	assert.ErrorContains(t, err, `of type "error", not a transaction`)
}
