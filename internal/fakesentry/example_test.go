package fakesentry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/fakesentry"
)

// A demo points sentry-go at a fake Sentry instead of a real account, then
// reads back what was sent.
func Example() {
	srv, err := fakesentry.New()
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: srv.ProjectDSN("42")})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.Scope().SetTag("service.name", "checkout")
	hub.CaptureException(errors.New("payment declined"))
	client.Flush(5 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events, err := srv.WaitFor(ctx, 1)
	if err != nil {
		panic(err)
	}
	ev := events[0]
	fmt.Println("project:", ev.Project)
	fmt.Println("service:", ev.Event.Tags["service.name"])
	fmt.Println("error:", ev.Event.Exception[0].Value)
	// Output:
	// project: 42
	// service: checkout
	// error: payment declined
}
