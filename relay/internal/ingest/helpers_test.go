package ingest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
	"github.com/tracedup/tracedup/relay/internal/upstream"
)

// recordedEvent is one Sink.Event call.
type recordedEvent struct {
	Req  ingest.Request
	Item envelope.Item
}

// fakeSink records what it is given; while full it refuses events.
type fakeSink struct {
	mu     sync.Mutex
	full   bool
	events []recordedEvent
	spans  [][]ingest.Span
	reqs   []ingest.Request // of Spans calls
}

func (s *fakeSink) Event(req *ingest.Request, item envelope.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return ingest.ErrFull
	}
	s.events = append(s.events, recordedEvent{*req, item})
	return nil
}

func (s *fakeSink) Spans(req *ingest.Request, spans []ingest.Span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, spans)
	s.reqs = append(s.reqs, *req)
}

func (s *fakeSink) Events() []recordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *fakeSink) AllSpans() []ingest.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []ingest.Span
	for _, sp := range s.spans {
		all = append(all, sp...)
	}
	return all
}

func (s *fakeSink) SetFull(full bool) {
	s.mu.Lock()
	s.full = full
	s.mu.Unlock()
}

// forwarded is one request the stand-in upstream got.
type forwarded struct {
	Path, RawQuery string
	Header         http.Header
	Body           []byte
}

// standIn records what reaches the upstream and answers with respond
// (200 when nil).
type standIn struct {
	*httptest.Server
	mu      sync.Mutex
	got     []forwarded
	respond func(n int, w http.ResponseWriter) // n counts requests from 0
}

func newStandIn(t *testing.T, respond func(n int, w http.ResponseWriter)) *standIn {
	s := &standIn{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, forwarded{r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, w)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) Got() []forwarded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// relay is a handler in front of an upstream client, on a loopback server
// that records every request body as it arrived.
type relay struct {
	*httptest.Server
	handler *ingest.Handler
	up      *upstream.Client
	sink    *fakeSink

	mu     sync.Mutex
	bodies [][]byte // raw request bodies, as sent
}

func newRelay(t *testing.T, upstreamURL string, hopts []ingest.Option, uopts ...upstream.Option) *relay {
	u, err := url.Parse(upstreamURL)
	require.NoError(t, err)
	r := &relay{sink: &fakeSink{}, up: upstream.New(u, uopts...)}
	r.handler = ingest.NewHandler(r.sink, r.up, hopts...)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.handler.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		r.Server.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.up.Close(ctx)
	})
	return r
}

func (r *relay) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

func (r *relay) Flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.True(t, r.up.Flush(ctx), "upstream flush: %+v", r.up.Stats())
}

// DSN returns a DSN pointing at the relay for project 42.
func (r *relay) DSN() string {
	return "http://" + testKey + "@" + r.Listener.Addr().String() + "/42"
}

const (
	testKey  = "abc"
	testAuth = "Sentry sentry_version=7, sentry_client=test/1.0, sentry_key=" + testKey
)

// post sends body to the relay's path with headers (name, value pairs).
func (r *relay) post(t *testing.T, path string, body []byte, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body = readAllAndClose(resp.Body)
	return resp
}

func readAllAndClose(rc io.ReadCloser) io.ReadCloser {
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	return io.NopCloser(bytes.NewReader(b))
}

// bodyOf returns resp's body, which it leaves readable again.
func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// noWaitClock is an upstream clock whose backoff returns at once.
type noWaitClock struct{}

func (noWaitClock) Now() time.Time { return time.Now() }
func (noWaitClock) Sleep(ctx context.Context, _ time.Duration) bool {
	return ctx.Err() == nil
}

func upstreamNoWait() upstream.Option { return upstream.WithClock(noWaitClock{}) }

func upstreamMaxBytes(n int64) upstream.Option { return upstream.WithMaxQueuedBytes(n) }
func upstreamWorkers(n int) upstream.Option    { return upstream.WithWorkers(n) }
