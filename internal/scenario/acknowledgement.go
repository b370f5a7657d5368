package scenario

import (
	"net/http"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// Acknowledgement is the wiring of services that run tracedup in process:
// sentryotel's span processor on each tracer provider, each service its own
// Sentry (a recorder) behind a dedup.Transport, and deduphttp on both sides,
// so that a callee acknowledges what it reported. A service without
// tracedup keeps the hook and span processor and sends to its Sentry
// directly. Each deduplicator's window is an hour: the test decides when,
// by flushing. options are every deduplicator's.
func Acknowledgement(options ...dedup.Option) Wiring { return acknowledgement{options} }

type acknowledgement struct{ options []dedup.Option }

func (acknowledgement) Name() string { return "acknowledgement" }

func (a acknowledgement) Service(_ testing.TB, s *Service, cfg ServiceConfig) Wired {
	s.Recorder = sentrytest.NewTransport()
	var transport sentry.Transport = s.Recorder
	if cfg.Sentry != nil {
		transport = cfg.Sentry(s.Recorder)
	}
	w := Wired{TracerProvider: []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor())}}
	if cfg.Tracedup {
		options := append([]dedup.Option{dedup.WithWindow(time.Hour)}, a.options...)
		s.Dedup = dedup.NewTransport(transport, append(options, cfg.Dedup...)...)
		transport = s.Dedup
		w.Transport = func(rt http.RoundTripper) http.RoundTripper { return deduphttp.NewTransport(rt, s.Dedup) }
		w.Handler = func(h http.Handler, traced func(http.Handler) http.Handler) http.Handler {
			if cfg.SpanInside {
				return deduphttp.NewHandler(traced(h), s.Dedup)
			}
			return traced(deduphttp.NewHandler(h, s.Dedup))
		}
	}
	w.Client = sentry.ClientOptions{Dsn: cfg.DSN, Transport: transport}
	return w
}

func (acknowledgement) Sent(t testing.TB, services []*Service) (got []string, captured int) {
	for _, s := range services {
		for _, ev := range s.Recorder.Events() {
			got = append(got, Describe(s.Name, ev))
		}
		if s.Dedup != nil {
			st := s.Dedup.Stats()
			assert.Equal(t, st.Received, st.Emitted+st.Suppressed+st.Pending, "%s: %+v", s.Name, st)
			captured += int(st.Received)
		} else {
			captured += len(s.Recorder.Events())
		}
	}
	return got, captured
}
