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

// Example reads the error events of one project for the last 24 hours,
// following the Link header's cursors, from a stand-in for sentry.io that
// answers in the documented shape.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := []map[string]any{{
			"eventID": "9fac2ceed9344f2bbfdd1fdacb0ed9b1", "groupID": "1889724436",
			"dateCreated": "2026-03-01T11:46:36Z", "event.type": "error",
			"title": "*main.PaymentDeclined: card declined",
			"tags": []map[string]string{
				{"key": "otel.trace_id", "value": "4bf92f3577b34da6a3ce929d0e0e4736"},
				{"key": "service.name", "value": "payment"},
			},
		}}
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", `<`+r.URL.Path+`?cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`)
		} else {
			w.Header().Set("Link", `<`+r.URL.Path+`?cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`)
			page[0]["eventID"], page[0]["dateCreated"] = "0d3e3fcd2fa44a0aa6fb4c59e7d8e5a1", "2026-03-01T11:50:00Z"
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	client, err := sentryapi.New(srv.URL, "sntrys_example",
		sentryapi.WithClock(func() time.Time { return now }),
		sentryapi.WithProgress(func(p sentryapi.Progress) {
			fmt.Printf("page %d: %d events so far\n", p.Pages, p.Events)
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	events, err := client.Events(context.Background(), sentryapi.Query{
		Org: "acme", Projects: []string{"payment"}, Start: now.Add(-24 * time.Hour),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		trace, _ := e.Tag("otel.trace_id")
		fmt.Println(e.EventID, e.GroupID, trace, e.Title)
	}
	// Output:
	// page 1: 1 events so far
	// page 2: 2 events so far
	// 9fac2ceed9344f2bbfdd1fdacb0ed9b1 1889724436 4bf92f3577b34da6a3ce929d0e0e4736 *main.PaymentDeclined: card declined
	// 0d3e3fcd2fa44a0aa6fb4c59e7d8e5a1 1889724436 4bf92f3577b34da6a3ce929d0e0e4736 *main.PaymentDeclined: card declined
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
		Org: "acme", Projects: []string{"web"}, Start: time.Now().Add(-time.Hour),
	})
	switch {
	case errors.Is(err, sentryapi.ErrForbidden):
		fmt.Println("forbidden:", err)
	case err != nil:
		fmt.Println("other:", err)
	}
	// Output: forbidden: sentry api: GET /api/0/projects/acme/web/events/ (page 1): 403 token lacks the required scope: the token needs the project:read scope, and its user must be a member of the project's team
}
