package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

// nodePayment is the folder of the Node payment service; installNode is
// what installs its packages (CI runs it before the tests).
const (
	nodePayment = "testdata/node-payment"
	installNode = "npm ci --prefix relay/testdata/node-payment"
)

// sentryTrace propagates the sentry-trace header, the one @sentry/node
// continues a trace from (its propagator reads sentry-trace and baggage,
// not traceparent), made from the OTel span context: a Go service whose
// spans are OTel's calls a Node service under its own trace and span.
// sentry-go's own propagator (sentry-go/otel) injects nothing without its
// deprecated span processor.
type sentryTrace struct{}

var _ propagation.TextMapPropagator = sentryTrace{}

func (sentryTrace) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	sampled := "0"
	if sc.IsSampled() {
		sampled = "1"
	}
	carrier.Set("sentry-trace", sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sampled)
}

func (sentryTrace) Extract(ctx context.Context, _ propagation.TextMapCarrier) context.Context {
	return ctx
}

func (sentryTrace) Fields() []string { return []string{"sentry-trace"} }

// startNodePayment starts the Node payment service, sending to dsn, and
// returns its URL once it listens; the process is killed at the test's
// end. It skips the test, saying what to run, where node or the service's
// packages are missing.
func startNodePayment(t *testing.T, dsn string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not on PATH: install Node.js (20.19 or later), then run %s", installNode)
	}
	if _, err := os.Stat(filepath.Join(nodePayment, "node_modules", "@sentry", "node")); err != nil {
		t.Skipf("the Node payment service's packages are not installed: run %s", installNode)
	}
	ready := &readyWriter{re: regexp.MustCompile(`payment: listening on (\d+)\n`), ready: make(chan string, 1)}
	var stderr bytes.Buffer
	cmd := exec.Command(node, "payment.js")
	cmd.Dir = nodePayment
	cmd.Env = append(os.Environ(), "SENTRY_DSN="+dsn, "PORT=0")
	cmd.Stdout, cmd.Stderr = ready, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case port := <-ready.ready:
		return "http://127.0.0.1:" + port
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("the Node payment service exited before it listened: %v\nstdout: %s\nstderr: %s", err, ready.String(), stderr.String())
	case <-ctx.Done():
		t.Fatalf("the Node payment service did not listen within 30s\nstdout: %s\nstderr: %s", ready.String(), stderr.String())
	}
	return ""
}

// readyWriter keeps what a process prints and sends the first submatch of
// re on ready the first time what it printed matches.
type readyWriter struct {
	re    *regexp.Regexp
	ready chan string

	mu   sync.Mutex
	buf  bytes.Buffer
	sent bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent {
		if m := w.re.FindSubmatch(w.buf.Bytes()); m != nil {
			w.sent = true
			w.ready <- string(m[1])
		}
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A Node → Go → Go cascade: payment is a Node service with @sentry/node's
// tracing (its spans streamed as span items), order and gateway are Go
// services with sentry-go and OTel spans sent to the relay's OTLP endpoint;
// none runs a deduplicator. N failing requests reach the upstream Sentry as
// N events, each Node's error as @sentry/node sent it, annotated with
// order's and gateway's errors: the relay linked Node's server span to
// order's client span, across languages and SDKs.
func TestRelayCollapsesACascadeRootedInANodeService(t *testing.T) {
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()
	u, err := url.Parse(upstream.URL())
	require.NoError(t, err)
	srv := relay.NewServer(u, relay.Config{Window: time.Hour})
	rs := httptest.NewServer(srv)
	defer rs.Close()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	payment := startNodePayment(t, relayDSN(t, rs.URL))
	spans := tracetest.NewSpanRecorder()
	s := startShop(t, rs.URL, shopOptions{
		external:   map[string]string{"payment": payment},
		propagator: propagation.NewCompositeTextMapPropagator(w3c, sentryTrace{}),
		recorder:   spans,
	})
	const requests = 5
	// Node streams its spans half a second after its request ends; each
	// trace is decided a grace after they arrived, with an hour's window.
	got := s.checkouts(t, requests, upstream, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Order's client spans, by trace: what Node's server spans continue.
	calls := map[string]string{}
	for _, sp := range spans.Ended() {
		if name, _ := sp.Resource().Set().Value("service.name"); sp.SpanKind() == trace.SpanKindClient && name.AsString() == "order" {
			calls[sp.SpanContext().TraceID().String()] = sp.SpanContext().SpanID().String()
		}
	}
	require.Len(t, calls, requests)
	for _, ev := range got {
		e := ev.Event
		require.NotEmpty(t, e.Exception)
		assert.Equal(t, "sentry.javascript.node", e.Sdk.Name, "the event upstream is Node's")
		assert.Equal(t, "CardDeclinedError", e.Exception[len(e.Exception)-1].Type)
		assert.Equal(t, "card declined", e.Exception[len(e.Exception)-1].Value)
		assert.Contains(t, string(ev.Raw), `"exception":{"values":[{"type":"CardDeclinedError"`, "forwarded as Node sent it, not re-encoded")
		tc := e.Contexts["trace"]
		tid, _ := tc["trace_id"].(string)
		assert.Equal(t, calls[tid], tc["parent_span_id"], "Node's server span continues order's call in trace %s", tid)

		assert.Equal(t, "2", e.Tags[dedup.TagSuppressed])
		dc := e.Contexts[dedup.ContextKey]
		require.NotNil(t, dc)
		assert.Equal(t, tid, dc["trace_id"])
		listed, _ := dc["events"].([]any)
		var messages []string
		for _, l := range listed {
			m, _ := l.(map[string]any)
			messages = append(messages, fmt.Sprint(m["service"], ": ", m["message"]))
		}
		assert.ElementsMatch(t, []string{"order: payment answered 402", "gateway: order answered 502"}, messages)
	}

	st := srv.Stats()
	assert.Equal(t, uint64(requests), st.Relay.Dedup.RequestEnded, "%+v", st.Relay.Dedup)
	assert.NotZero(t, st.Ingest.Items["span"], "@sentry/node streams span items: %v", st.Ingest.Items)
	assert.Zero(t, st.Ingest.Items["transaction"], "%v", st.Ingest.Items)
	assert.Zero(t, st.Ingest.SpanErrors)
	require.True(t, srv.Flush(ctx))
	assert.Len(t, upstream.Events(), requests, "nothing more after a flush")
	assert.Equal(t, st.Ingest.Items["span"], upstream.Stats().Items["span"], "Node's span items are forwarded as they came")
	d := srv.Stats().Relay.Dedup
	assert.Equal(t, uint64(3*requests), d.Received)
	assert.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped)
}
