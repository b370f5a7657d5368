package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// forwarded records what the relay sends upstream.
type forwarded struct {
	mu   sync.Mutex
	envs []envelope.Envelope
	reqs []*ingest.Request
}

func (f *forwarded) Send(req *ingest.Request, env []byte, _ []string) bool {
	e, err := envelope.Parse(env)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs, f.reqs = append(f.envs, e), append(f.reqs, req)
	return true
}

func (f *forwarded) Flush(context.Context) bool { return true }

// events returns the forwarded events, decoded as generic JSON.
func (f *forwarded) events(t *testing.T) []map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, e := range f.envs {
		for _, it := range e.Items {
			var m map[string]any
			require.NoError(t, json.Unmarshal(it.Payload, &m))
			out = append(out, m)
		}
	}
	return out
}

const traceHex = "0af7651916cd43dd8448eb211c80319c"

func sid(t *testing.T, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	require.NoError(t, err)
	return id
}

// sdkEvent is an error event as a Sentry SDK of another language sends it:
// a timestamp in seconds, the exception under "values", tags as pairs, a
// field sentry-go does not know.
func sdkEvent(id, service, typ, span, parent string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"event_id":%q,"timestamp":%.3f,"platform":"node","level":"error",`+
		`"exception":{"values":[{"type":%q,"value":"failed","stacktrace":{"frames":[{"function":"f","in_app":true}]}}]},`+
		`"tags":[["team","payments"]],"contexts":{"trace":{"trace_id":%q,"span_id":%q,"parent_span_id":%q},`+
		`"otel":{"resource":{"service.name":%q}}},"x_unknown_to_go":{"kept":true}}`,
		id, float64(at.UnixNano())/1e9, typ, traceHex, span, parent, service)
}

// A cascade across three services that run no tracedup, linked only by the
// spans their transactions carried through the relay: one event goes
// upstream, payment's, as it was sent (fields sentry-go does not know, tags
// as pairs), annotated with what it stands for; the trace is decided a
// grace after its spans arrived, not at the window's end.
func TestRelayCollapsesACascadeBySpans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &forwarded{}
		r := New(up, Config{})
		defer r.Close()
		req := &ingest.Request{Project: "1", Auth: ingest.Auth{Key: "public"}, EnvelopeHeader: []byte(`{"event_id":"x"}`)}
		now := time.Now()
		tid, err := trace.TraceIDFromHex(traceHex)
		require.NoError(t, err)

		// payment's error on c3, a child of its server span p1; order's on
		// its handler span b1, whose client span o2 called payment; the
		// gateway's on g1, whose client span g2 called order.
		for _, ev := range [][]byte{
			sdkEvent("aa000000000000000000000000000001", "payment", "PaymentDeclined", "00000000000000c3", "00000000000000f1", now),
			sdkEvent("aa000000000000000000000000000002", "order", "CallFailed", "00000000000000b1", "", now.Add(time.Millisecond)),
			sdkEvent("aa000000000000000000000000000003", "gateway", "CallFailed", "00000000000000a1", "", now.Add(2*time.Millisecond)),
		} {
			require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: ev}))
		}
		span := func(id, parent string, segment bool, start time.Duration) ingest.Span {
			s := ingest.Span{TraceID: tid, SpanID: sid(t, id), Start: now.Add(start - time.Second), End: now.Add(time.Second), Segment: segment}
			if parent != "" {
				s.Parent = sid(t, parent)
			}
			return s
		}
		r.Spans(req, []ingest.Span{span("00000000000000f1", "00000000000000e2", true, 0), span("00000000000000c3", "00000000000000f1", false, 0)})
		r.Spans(req, []ingest.Span{span("00000000000000b1", "00000000000000d9", true, 0), span("00000000000000e2", "00000000000000b1", false, 0)})
		synctest.Wait()
		assert.Zero(t, r.Stats().Dedup.RequestEnded, "the gateway's spans have not come")
		r.Spans(req, []ingest.Span{span("00000000000000a1", "", true, 0), span("00000000000000d9", "00000000000000a1", false, 0)})
		time.Sleep(DefaultGrace)
		synctest.Wait()

		st := r.Stats()
		assert.Equal(t, uint64(1), st.Dedup.RequestEnded, "decided a grace after the spans: %+v", st.Dedup)
		got := up.events(t)
		require.Len(t, got, 1, "%+v", st.Dedup)
		root := got[0]
		assert.Equal(t, "aa000000000000000000000000000001", root["event_id"])
		assert.Equal(t, map[string]any{"kept": true}, root["x_unknown_to_go"], "sent as it came")
		assert.Contains(t, root["tags"], []any{"team", "payments"})
		assert.Contains(t, root["tags"], []any{dedup.TagSuppressed, "2"})
		ctx := root["contexts"].(map[string]any)
		assert.Contains(t, ctx, "otel")
		annotation := ctx[dedup.ContextKey].(map[string]any)
		assert.EqualValues(t, 2, annotation["suppressed"])
		assert.Len(t, annotation["events"], 2)
		assert.Equal(t, "public", up.reqs[0].Auth.Key, "forwarded with the SDK's key")
	})
}

// Two failures of one request with no known link: both go upstream.
func TestRelaySendsWhatIsNotLinked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &forwarded{}
		r := New(up, Config{})
		defer r.Close()
		req := &ingest.Request{Project: "1", Auth: ingest.Auth{Key: "public"}}
		now := time.Now()
		require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: sdkEvent("bb000000000000000000000000000001", "payment", "PaymentDeclined", "00000000000000c3", "00000000000000f1", now)}))
		require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: sdkEvent("bb000000000000000000000000000002", "stock", "OutOfStock", "00000000000000c4", "00000000000000f2", now)}))
		require.True(t, r.Flush(context.Background()))
		assert.Len(t, up.events(t), 2)
		st := r.Stats()
		assert.Equal(t, st.Dedup.Received, st.Dedup.Emitted+st.Dedup.Suppressed+st.Dedup.Pending+st.Dedup.Dropped)
	})
}

// Whatever an SDK sends as an event, the relay never panics and forwards
// what it cannot read as it came.
func TestRelayForwardsWhatItCannotRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &forwarded{}
		r := New(up, Config{})
		defer r.Close()
		req := &ingest.Request{Project: "1"}
		for _, payload := range []string{`not json`, `[1,2]`, `{"exception":42,"tags":"x","timestamp":{}}`, ``} {
			require.NoError(t, r.Event(req, envelope.Item{Type: "event", Header: []byte(`{"type":"event"}`), Payload: []byte(payload)}))
		}
		require.True(t, r.Flush(context.Background()))
		assert.Len(t, up.envs, 4)
	})
}

// A service that runs a deduplicator sends the relay its reports, each
// standing for some events already: the relay's report counts them once,
// with its own. Payment's report stands for one repeat; order's error is a
// cascade of it: the report that goes upstream stands for two.
func TestRelayCountsReportsOfServicesThatDeduplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &forwarded{}
		r := New(up, Config{})
		defer r.Close()
		req := &ingest.Request{Project: "1", Auth: ingest.Auth{Key: "public"}}
		now := time.Now()
		var report map[string]any
		require.NoError(t, json.Unmarshal(sdkEvent("cc000000000000000000000000000001", "payment", "PaymentDeclined", "00000000000000c3", "00000000000000f1", now), &report))
		report["tags"] = map[string]string{dedup.TagSuppressed: "1"}
		raw, err := json.Marshal(report)
		require.NoError(t, err)
		require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: raw}))
		require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: sdkEvent("cc000000000000000000000000000002", "order", "CallFailed", "00000000000000b1", "", now)}))
		tid, err := trace.TraceIDFromHex(traceHex)
		require.NoError(t, err)
		start, end := now.Add(-time.Second), now.Add(time.Second) // spans end after the captures in them
		r.Spans(req, []ingest.Span{
			{TraceID: tid, SpanID: sid(t, "00000000000000c3"), Parent: sid(t, "00000000000000f1"), Start: start, End: end},
			{TraceID: tid, SpanID: sid(t, "00000000000000f1"), Parent: sid(t, "00000000000000e2"), Start: start, End: end, Segment: true},
			{TraceID: tid, SpanID: sid(t, "00000000000000e2"), Parent: sid(t, "00000000000000b1"), Start: start, End: end},
			{TraceID: tid, SpanID: sid(t, "00000000000000b1"), Start: start, End: end, Segment: true},
		})
		require.True(t, r.Flush(context.Background()))
		got := up.events(t)
		require.Len(t, got, 1)
		assert.Equal(t, "2", got[0]["tags"].(map[string]any)[dedup.TagSuppressed], "its repeat and order's cascade")
	})
}

// An event whose tags name its OTel trace and span (sentryotel's, or any
// SDK's OTel hook) and whose trace context is another (the SDK's own
// tracing) is held by the deduplicator under the tagged trace and span: the
// relay must wait for that span's spans, and tell that trace when they came.
func TestRelayCompletesTheTraceTheEventIsHeldUnder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &forwarded{}
		r := New(up, Config{})
		defer r.Close()
		req := &ingest.Request{Project: "1", Auth: ingest.Auth{Key: "public"}}
		now := time.Now()
		var ev map[string]any
		require.NoError(t, json.Unmarshal(sdkEvent("dd000000000000000000000000000001", "payment", "PaymentDeclined",
			"00000000000000c3", "00000000000000f1", now), &ev))
		ev["tags"] = map[string]string{"otel.trace_id": traceHex, "otel.span_id": "00000000000000c3"}
		ev["contexts"].(map[string]any)["trace"] = map[string]any{
			"trace_id": "1bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00000000000000d7"}
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		require.NoError(t, r.Event(req, envelope.Item{Type: "event", Payload: raw}))

		tid, err := trace.TraceIDFromHex(traceHex)
		require.NoError(t, err)
		start, end := now.Add(-time.Second), now.Add(time.Second)
		r.Spans(req, []ingest.Span{{TraceID: tid, SpanID: sid(t, "00000000000000c3"), Start: start, End: end, Segment: true}})
		time.Sleep(DefaultGrace + time.Millisecond)
		synctest.Wait()
		st := r.Stats()
		assert.Equal(t, uint64(1), st.Dedup.RequestEnded, "decided a grace after its span came: %+v", st.Dedup)
		assert.Len(t, up.events(t), 1, "sent a grace after its span came, not at the window's end")
	})
}
