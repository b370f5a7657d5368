package kafka

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

func TestEventKey(t *testing.T) {
	const tid = "0af7651916cd43dd8448eb211c80319c"
	for _, tc := range []struct {
		name            string
		payload, header string
		want            string
	}{
		{"the event's trace context", `{"event_id":"e1","contexts":{"trace":{"trace_id":"` + tid + `"}}}`, `{"trace":{"trace_id":"ffffffffffffffffffffffffffffffff"}}`, tid},
		{"any case, dashed", `{"contexts":{"trace":{"trace_id":"0AF76519-16CD-43DD-8448-EB211C80319C"}}}`, `{}`, tid},
		{"else the envelope's trace", `{"event_id":"e1"}`, `{"trace":{"trace_id":"` + tid + `"}}`, tid},
		{"an invalid trace id is none", `{"event_id":"e1","contexts":{"trace":{"trace_id":"00000000000000000000000000000000"}}}`, `{}`, "e1"},
		{"else the event id, to spread", `{"event_id":"e1"}`, `{}`, "e1"},
		{"else the envelope's event id", `{}`, `{"event_id":"e2"}`, "e2"},
		{"else none", `not json`, ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, string(eventKey([]byte(tc.payload), []byte(tc.header))))
		})
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	received := time.Unix(1700000000, 123)
	req := &ingest.Request{Project: "42", Auth: ingest.Auth{Key: "k", Header: "Sentry sentry_key=k", Query: "sentry_key=k"},
		UserAgent: "sentry.go/0.46.2", EnvelopeHeader: []byte(`{"event_id":"e1"}`), Received: received}
	item := envelope.Item{Type: "event", Header: []byte(`{"type":"event","length":3}`), Payload: []byte(`{"contexts":{"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c"}}}`)}
	r, err := eventRecord("t", req, item)
	require.NoError(t, err)
	assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", string(r.Key))
	d, err := decode(r)
	require.NoError(t, err)
	assert.Equal(t, kindEvent, d.kind)
	assert.Equal(t, item, d.item, "the payload byte for byte")
	req.EnvelopeHeader = []byte(`{"event_id":"e1"}`)
	assert.Equal(t, req, d.req)

	a, b := trace.TraceID{1}, trace.TraceID{2}
	spans := []ingest.Span{
		{TraceID: a, SpanID: trace.SpanID{1}, Start: received, End: received.Add(time.Second), Service: "gateway", Segment: true},
		{TraceID: b, SpanID: trace.SpanID{2}, Start: received},
		{TraceID: a, SpanID: trace.SpanID{3}, Parent: trace.SpanID{1}, Start: received, Service: "gateway"},
		{TraceID: a}, // no span id: not a span
	}
	rs, err := spansRecords("t", req, spans)
	require.NoError(t, err)
	require.Len(t, rs, 2, "one record per trace")
	assert.Equal(t, a.String(), string(rs[0].Key))
	assert.Equal(t, b.String(), string(rs[1].Key))
	d, err = decode(rs[0])
	require.NoError(t, err)
	assert.Equal(t, kindSpans, d.kind)
	for i := range d.spans { // time.Unix(0, n) has no monotonic reading; equal instants
		assert.True(t, spans[[]int{0, 2}[i]].Start.Equal(d.spans[i].Start))
		d.spans[i].Start, d.spans[i].End = spans[[]int{0, 2}[i]].Start, spans[[]int{0, 2}[i]].End
	}
	assert.Equal(t, []ingest.Span{spans[0], spans[2]}, d.spans)
}

func TestDecodeRefusesUnknownVersions(t *testing.T) {
	r, err := eventRecord("t", &ingest.Request{}, envelope.Item{Payload: []byte(`{}`)})
	require.NoError(t, err)
	r.Headers[0].Value = []byte("2")
	_, err = decode(r)
	assert.ErrorIs(t, err, errVersion)
}
