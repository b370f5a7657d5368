package sentryapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tracedup/tracedup/internal/sentryapi"
)

// Example reads the error events of an organisation for the last 24 hours
// through Discover, following the Link header's cursors, from a stand-in for
// sentry.io. The second event comes from a service without tracedup's hook:
// no otel.trace_id tag, yet its trace id is in Discover's trace column.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		row := map[string]any{
			"id": "9fac2ceed9344f2bbfdd1fdacb0ed9b1", "issue.id": 1889724436, "project": "payment",
			"event.type": "error", "timestamp": "2026-03-01T11:46:36+00:00",
			"title": "*main.PaymentDeclined: card declined", "trace": "4bf92f3577b34da6a3ce929d0e0e4736",
			"tags[otel.trace_id]": "4bf92f3577b34da6a3ce929d0e0e4736",
		}
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", `<`+r.URL.Path+`?cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`)
		} else {
			w.Header().Set("Link", `<`+r.URL.Path+`?cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`)
			row["id"], row["timestamp"], row["project"], row["issue.id"] = "0d3e3fcd2fa44a0aa6fb4c59e7d8e5a1", "2026-03-01T11:50:00+00:00", "legacy", 1889724437
			row["title"], row["tags[otel.trace_id]"] = "TimeoutError: payment timed out", ""
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{row}, "meta": map[string]any{}})
	}))
	defer srv.Close()

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	client, err := sentryapi.New(srv.URL, "sntrys_example",
		sentryapi.WithClock(func() time.Time { return now }),
		sentryapi.WithProgress(func(p sentryapi.Progress) {
			fmt.Printf("page %d (%s): %d events so far\n", p.Pages, p.Read, p.Events)
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	events, err := client.Events(context.Background(), sentryapi.Query{Org: "acme", Start: now.Add(-24 * time.Hour)})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		fmt.Println(e.Project, e.GroupID, e.TraceID(), e.Title)
	}
	// Output:
	// page 1 (Discover, trace ids from its trace column, 100 a page): 1 events so far
	// page 2 (Discover, trace ids from its trace column, 100 a page): 2 events so far
	// payment 1889724436 4bf92f3577b34da6a3ce929d0e0e4736 *main.PaymentDeclined: card declined
	// legacy 1889724437 4bf92f3577b34da6a3ce929d0e0e4736 TimeoutError: payment timed out
}

// ExampleNextCursor follows Sentry's Link header: continue while the
// rel="next" entry says results="true".
func ExampleNextCursor() {
	header := `<https://sentry.io/api/0/projects/acme/web/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", ` +
		`<https://sentry.io/api/0/projects/acme/web/events/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`
	fmt.Println(sentryapi.NextCursor(header))
	// Output: 0:100:0 true
}

// ExampleError shows how a command tells the failures apart.
func ExampleError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	client, _ := sentryapi.New(srv.URL, "sntrys_example")
	_, err := client.Events(context.Background(), sentryapi.Query{
		Org: "acme", Projects: []string{"web"}, Start: time.Now().Add(-time.Hour), Read: sentryapi.ReadFull,
	})
	var apiErr *sentryapi.Error
	switch {
	case errors.As(err, &apiErr) && errors.Is(err, sentryapi.ErrForbidden):
		fmt.Println("forbidden:", apiErr.Path, apiErr.StatusCode)
	case err != nil:
		fmt.Println("other:", err)
	}
	// Output: forbidden: /api/0/projects/acme/web/events/ 403
}
