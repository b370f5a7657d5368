package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

func ExampleNewServer() {
	// The Sentry to forward to: here one on loopback; in production
	// https://o123.ingest.sentry.io, a self-hosted Sentry or another relay.
	upstream, _ := fakesentry.New()
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL())

	srv := relay.NewServer(u, relay.Config{})
	rs := httptest.NewServer(srv) // tracedup-relay serves it on -listen
	defer rs.Close()

	// An SDK changes only its DSN's host: the key and project stay.
	dsn := strings.Replace(upstream.DSN(), strings.TrimPrefix(upstream.URL(), "http://"), strings.TrimPrefix(rs.URL, "http://"), 1)
	client, _ := sentry.NewClient(sentry.ClientOptions{Dsn: dsn})
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.Scope().SetContext("trace", sentry.Context{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "00000000000000c3"})
	hub.CaptureException(errors.New("card declined"))
	client.Flush(time.Second)
	client.Close()

	// The relay holds the error for its trace until the trace's spans have
	// come or its window ends; at shutdown it decides what it holds.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	for _, ev := range upstream.Events() {
		fmt.Println("upstream got:", ev.Event.Exception[0].Value)
	}
	// Output:
	// upstream got: card declined
}
