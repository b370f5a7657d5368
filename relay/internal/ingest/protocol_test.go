package ingest_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracedup/tracedup/relay/internal/ingest"
)

const (
	traceHex = "0123456789abcdef0123456789abcdef"
	eventHex = "fedcba9876543210fedcba9876543210"
)

var (
	sessionEnvelope = []byte(`{"sent_at":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"type":"session","length":13}` + "\n" + `{"sid":"abc"}` + "\n" +
		`{"type":"client_report"}` + "\n" + `{"discarded_events":[]}` + "\n")
	errorEvent    = `{"event_id":"` + eventHex + `","level":"error","exception":{"values":[{"type":"E","value":"boom"}]},"contexts":{"trace":{"trace_id":"` + traceHex + `","span_id":"00000000000000a1"}}}`
	eventEnvelope = []byte(`{"event_id":"` + eventHex + `"}` + "\n" +
		`{"type":"event"}` + "\n" + errorEvent + "\n" +
		`{"type":"attachment","length":5,"filename":"a.txt"}` + "\n" + "hello" + "\n")
)

func compress(t *testing.T, enc string, data []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate": // zlib, as HTTP means it
		w = zlib.NewWriter(&buf)
	case "deflate-raw":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		require.NoError(t, err)
		w = zw
	default:
		return data
	}
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// Compressed bodies, chunked and without a Content-Type, are decompressed;
// the envelope is forwarded as it was before compression.
func TestContentEncodings(t *testing.T) {
	for _, enc := range []string{"", "identity", "utf-8", "gzip", "deflate", "deflate-raw", "br", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			up := newStandIn(t, nil)
			r := newRelay(t, up.URL, nil)
			header := strings.TrimSuffix(enc, "-raw")
			// An io.Reader of unknown length: net/http sends it chunked.
			req, err := http.NewRequest(http.MethodPost, r.URL+"/api/42/envelope/", io.MultiReader(bytes.NewReader(compress(t, enc, sessionEnvelope))))
			require.NoError(t, err)
			req.Header.Set("X-Sentry-Auth", testAuth)
			if header != "" {
				req.Header.Set("Content-Encoding", header)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
			r.Flush(t)
			got := up.Got()
			require.Len(t, got, 1)
			assert.Equal(t, string(sessionEnvelope), string(got[0].Body))
		})
	}
}

// The key may come in X-Sentry-Auth, in the sentry_key query (what
// @sentry/node and browser SDKs send) or in the envelope's dsn (tunnels);
// each is forwarded as it came.
func TestAuthSources(t *testing.T) {
	query := "sentry_key=" + testKey + "&sentry_version=7&sentry_client=sentry.javascript.node%2F10.5.0"
	withDSN := []byte(`{"dsn":"https://` + testKey + `@o1.ingest.sentry.io/42"}` + "\n" + `{"type":"session"}` + "\n" + `{"sid":"1"}` + "\n")
	tests := []struct {
		name      string
		path      string
		body      []byte
		headers   []string
		wantKey   string
		wantAuth  string
		wantQuery string
	}{
		{"header", "/api/42/envelope/", sessionEnvelope, []string{"X-Sentry-Auth", testAuth}, testKey, testAuth, ""},
		{"lower-case header", "/api/42/envelope/", sessionEnvelope, []string{"x-sentry-auth", "sentry sentry_key=" + testKey}, testKey, "sentry sentry_key=" + testKey, ""},
		{"query", "/api/42/envelope/?" + query, sessionEnvelope, nil, testKey, "", query},
		{"dsn", "/api/42/envelope/", withDSN, nil, testKey, "Sentry sentry_version=7, sentry_key=" + testKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newStandIn(t, nil)
			r := newRelay(t, up.URL, nil)
			resp := r.post(t, tt.path, tt.body, tt.headers...)
			require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
			r.Flush(t)
			got := up.Got()
			require.Len(t, got, 1)
			assert.Equal(t, tt.wantAuth, got[0].Header.Get("X-Sentry-Auth"))
			assert.Equal(t, tt.wantQuery, got[0].RawQuery)
			assert.Equal(t, tt.body, got[0].Body)
		})
	}
}

// Requests Relay refuses are refused the same way, counted by reason, and
// nothing of them reaches the sink or the upstream.
func TestRejections(t *testing.T) {
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write([]byte("{}\n{\"type\":\"session\"}\n"))
	_, _ = zw.Write(make([]byte, 2<<20)) // 2 MiB of zeros, a few KiB compressed
	_ = zw.Close()
	bigEvent := []byte("{}\n{\"type\":\"event\"}\n{\"pad\":\"" + strings.Repeat("x", 1<<20) + "\"}\n")
	small := []ingest.Option{ingest.WithLimits(ingest.Limits{MaxEnvelopeSize: 1 << 20})}

	tests := []struct {
		name    string
		method  string
		path    string
		body    []byte
		headers []string
		options []ingest.Option
		status  int
		reason  string
	}{
		{"no key", "POST", "/api/42/envelope/", sessionEnvelope, nil, nil, 401, "unauthorized"},
		{"no key in the header", "POST", "/api/42/envelope/", sessionEnvelope, []string{"X-Sentry-Auth", "Sentry sentry_version=7"}, nil, 401, "unauthorized"},
		{"store without a key", "POST", "/api/42/store/", []byte(errorEvent), nil, nil, 401, "unauthorized"},
		{"event over 1 MiB", "POST", "/api/42/envelope/", bigEvent, []string{"X-Sentry-Auth", testAuth}, nil, 413, "too_large"},
		{"body over the envelope limit", "POST", "/api/42/envelope/", append(bytes.Clone(sessionEnvelope), make([]byte, 1<<20)...), []string{"X-Sentry-Auth", testAuth}, small, 413, "too_large"},
		{"zip bomb", "POST", "/api/42/envelope/", bomb.Bytes(), []string{"X-Sentry-Auth", testAuth, "Content-Encoding", "gzip"}, small, 413, "too_large"},
		{"store over 1 MiB", "POST", "/api/42/store/", []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`), []string{"X-Sentry-Auth", testAuth}, nil, 413, "too_large"},
		{"client reports over 4 KiB", "POST", "/api/42/envelope/", []byte("{}\n{\"type\":\"client_report\"}\n{\"x\":\"" + strings.Repeat("x", 5000) + "\"}\n"), []string{"X-Sentry-Auth", testAuth}, nil, 413, "too_large"},
		{"not an envelope", "POST", "/api/42/envelope/", []byte("hello"), []string{"X-Sentry-Auth", testAuth}, nil, 400, "malformed"},
		{"item without a type", "POST", "/api/42/envelope/", []byte("{}\n{}\n{}\n"), []string{"X-Sentry-Auth", testAuth}, nil, 400, "malformed"},
		{"length past the end", "POST", "/api/42/envelope/", []byte("{}\n{\"type\":\"event\",\"length\":99}\n{}\n"), []string{"X-Sentry-Auth", testAuth}, nil, 400, "malformed"},
		{"store not JSON", "POST", "/api/42/store/", []byte("[1,2]"), []string{"X-Sentry-Auth", testAuth}, nil, 400, "malformed"},
		{"bad gzip", "POST", "/api/42/envelope/", []byte("not gzip"), []string{"X-Sentry-Auth", testAuth, "Content-Encoding", "gzip"}, nil, 400, "encoding"},
		{"unknown encoding", "POST", "/api/42/envelope/", sessionEnvelope, []string{"X-Sentry-Auth", testAuth, "Content-Encoding", "lzma"}, nil, 415, "encoding"},
		{"GET", "GET", "/api/42/envelope/", nil, nil, nil, 405, "method"},
		{"PUT", "PUT", "/api/42/store/", nil, nil, nil, 405, "method"},
		{"unknown path", "POST", "/api/42/events/", sessionEnvelope, []string{"X-Sentry-Auth", testAuth}, nil, 404, "not_found"},
		{"no project", "POST", "/api//envelope/", sessionEnvelope, []string{"X-Sentry-Auth", testAuth}, nil, 404, "not_found"},
		{"root", "GET", "/", nil, nil, nil, 404, "not_found"},
		{"OTLP text", "POST", "/api/42/integration/otlp/v1/traces", []byte("x"), []string{"X-Sentry-Auth", testAuth, "Content-Type", "text/plain"}, nil, 415, "content_type"},
		{"OTLP garbage", "POST", "/api/42/integration/otlp/v1/traces", []byte{0xff, 0xff, 0xff}, []string{"X-Sentry-Auth", testAuth, "Content-Type", "application/x-protobuf"}, nil, 400, "malformed"},
		{"OTLP without a key", "POST", "/api/42/integration/otlp/v1/traces", nil, []string{"Content-Type", "application/x-protobuf"}, nil, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newStandIn(t, nil)
			r := newRelay(t, up.URL, tt.options)
			req, err := http.NewRequest(tt.method, r.URL+tt.path, bytes.NewReader(tt.body))
			require.NoError(t, err)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body := bodyOf(resp)
			_ = resp.Body.Close()
			assert.Equal(t, tt.status, resp.StatusCode, body)
			var detail struct{ Detail string }
			require.NoError(t, json.Unmarshal([]byte(body), &detail), body)
			assert.NotEmpty(t, detail.Detail, "a clear message")
			assert.Equal(t, detail.Detail, resp.Header.Get("X-Sentry-Error"))
			assert.Equal(t, map[string]uint64{tt.reason: 1}, r.handler.Stats().Rejected)
			r.Flush(t)
			assert.Empty(t, up.Got())
			assert.Empty(t, r.sink.Events())
			assert.Empty(t, r.sink.AllSpans())
		})
	}
}

// An envelope's event goes to the sink, alone; its other items are
// forwarded together under the original header, and the SDK is answered
// with the event id.
func TestEventToSinkRestForwarded(t *testing.T) {
	up := newStandIn(t, nil)
	r := newRelay(t, up.URL, nil)
	resp := r.post(t, "/api/42/envelope/", eventEnvelope, "X-Sentry-Auth", testAuth, "User-Agent", "sentry.python/2.0")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"id":"`+eventHex+`"}`, bodyOf(resp))
	r.Flush(t)

	events := r.sink.Events()
	require.Len(t, events, 1)
	assert.Equal(t, errorEvent, string(events[0].Item.Payload))
	assert.Equal(t, "sentry.python/2.0", events[0].Req.UserAgent)
	assert.Equal(t, `{"event_id":"`+eventHex+`"}`, string(events[0].Req.EnvelopeHeader))

	got := up.Got()
	require.Len(t, got, 1)
	assert.Equal(t, `{"event_id":"`+eventHex+`"}`+"\n"+
		`{"type":"attachment","length":5,"filename":"a.txt"}`+"\n"+"hello"+"\n", string(got[0].Body))
	assert.Equal(t, "sentry.python/2.0", got[0].Header.Get("User-Agent"))
	s := r.handler.Stats()
	assert.Equal(t, map[string]uint64{"event": 1, "attachment": 1}, s.Items)
}

// When the sink is full, the SDK is told 429 with Retry-After for errors,
// and nothing of the envelope is forwarded.
func TestSinkFull(t *testing.T) {
	up := newStandIn(t, nil)
	r := newRelay(t, up.URL, nil)
	r.sink.SetFull(true)
	resp := r.post(t, "/api/42/envelope/", eventEnvelope, "X-Sentry-Auth", testAuth)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Equal(t, "2:error:key", resp.Header.Get("X-Sentry-Rate-Limits"))
	r.Flush(t)
	assert.Empty(t, up.Got())
	assert.Equal(t, map[string]uint64{"sink_full": 1}, r.handler.Stats().Rejected)
}

// The legacy store endpoint takes one JSON event (also base64 and zlib, as
// old SDKs sent it) and gives it to the sink as an event item.
func TestStore(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write([]byte(errorEvent))
	_ = zw.Close()
	for name, body := range map[string][]byte{
		"json":        []byte(errorEvent),
		"base64":      []byte(base64.StdEncoding.EncodeToString([]byte(errorEvent))),
		"base64+zlib": []byte(base64.StdEncoding.EncodeToString(z.Bytes())),
	} {
		t.Run(name, func(t *testing.T) {
			up := newStandIn(t, nil)
			r := newRelay(t, up.URL, nil)
			resp := r.post(t, "/api/42/store/?sentry_key="+testKey, body)
			require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
			assert.JSONEq(t, `{"id":"`+eventHex+`"}`, bodyOf(resp))
			events := r.sink.Events()
			require.Len(t, events, 1)
			assert.Equal(t, errorEvent, string(events[0].Item.Payload))
			assert.Equal(t, "event", events[0].Item.Type)
			assert.Equal(t, "sentry_key="+testKey, events[0].Req.Auth.Query)
			assert.JSONEq(t, `{"event_id":"`+eventHex+`"}`, string(events[0].Req.EnvelopeHeader))
		})
	}
}

// Span items, v2 ({"items": [...]}, what span streaming SDKs send) and v1
// (one span), are read into spans and forwarded as they came.
func TestSpanItems(t *testing.T) {
	v2 := `{"items":[` +
		`{"trace_id":"` + traceHex + `","span_id":"00000000000000a1","name":"GET /","status":"ok","is_segment":true,"start_timestamp":1742921669.25,"end_timestamp":1742921669.75,"attributes":{"sentry.release":{"type":"string","value":"web@1"}}},` +
		`{"trace_id":"` + traceHex + `","span_id":"00000000000000a2","parent_span_id":"00000000000000a1","name":"db","status":"ok","start_timestamp":"2025-03-25T16:54:29.3Z","end_timestamp":1742921669.5,"attributes":{"service.name":{"type":"string","value":"web"}}}]}`
	v1 := `{"trace_id":"` + traceHex + `","span_id":"00000000000000b1","parent_span_id":"00000000000000a2","start_timestamp":1742921669.4,"timestamp":1742921669.45}`
	body := []byte("{}\n" +
		`{"type":"span","item_count":2,"content_type":"application/vnd.sentry.items.span.v2+json"}` + "\n" + v2 + "\n" +
		`{"type":"span"}` + "\n" + v1 + "\n")
	up := newStandIn(t, nil)
	r := newRelay(t, up.URL, nil)
	resp := r.post(t, "/api/42/envelope/", body, "X-Sentry-Auth", testAuth)
	require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
	r.Flush(t)

	tid, _ := trace.TraceIDFromHex(traceHex)
	sid := func(s string) trace.SpanID { id, _ := trace.SpanIDFromHex(s); return id }
	spans := r.sink.AllSpans()
	require.Len(t, spans, 3)
	assert.Equal(t, ingest.Span{TraceID: tid, SpanID: sid("00000000000000a1"), Segment: true, Service: "web@1",
		Start: unixMilli(1742921669250), End: unixMilli(1742921669750)}, spans[0])
	assert.Equal(t, ingest.Span{TraceID: tid, SpanID: sid("00000000000000a2"), Parent: sid("00000000000000a1"), Service: "web",
		Start: unixMilli(1742921669300), End: unixMilli(1742921669500)}, spans[1])
	assert.Equal(t, sid("00000000000000a2"), spans[2].Parent)
	assert.Equal(t, unixMilli(1742921669450), spans[2].End)
	got := up.Got()
	require.Len(t, got, 1)
	assert.Equal(t, body, got[0].Body)
}

// A span item as @sentry/node 11.12.0 streams it (attributes trimmed): the
// server span of a request continued from a caller's sentry-trace header, a
// segment whose parent is the caller's span, with attributes of every type.
func TestSpanItemOfSentryNode(t *testing.T) {
	body := []byte(`{"sent_at":"2026-12-06T22:17:35.092Z","sdk":{"name":"sentry.javascript.node","version":"11.12.0"}}` + "\n" +
		`{"type":"span","item_count":1,"content_type":"application/vnd.sentry.items.span.v2+json"}` + "\n" +
		`{"version":2,"items":[{"name":"POST","span_id":"9bb983b2ae6c1277","trace_id":"` + traceHex + `","parent_span_id":"89abcdef01234567",` +
		`"start_timestamp":1796595454.5733683,"end_timestamp":1796595454.589179,"is_segment":true,"status":"error","attributes":{` +
		`"sentry.op":{"value":"http.server","type":"string"},"sentry.kind":{"value":"server","type":"string"},` +
		`"http.request.header.sentry-trace":{"value":["` + traceHex + `-89abcdef01234567-1"],"type":"array"},` +
		`"http.response.status_code":{"value":402,"type":"integer"},"sentry.is_localhost":{"value":true,"type":"boolean"},` +
		`"sentry.segment.id":{"value":"9bb983b2ae6c1277","type":"string"},"sentry.sdk.name":{"value":"sentry.javascript.node","type":"string"}}}]}` + "\n")
	up := newStandIn(t, nil)
	r := newRelay(t, up.URL, nil)
	resp := r.post(t, "/api/1/envelope/?sentry_version=7&sentry_key="+testKey+"&sentry_client=sentry.javascript.node%2F11.12.0", body)
	require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
	r.Flush(t)

	tid, _ := trace.TraceIDFromHex(traceHex)
	sid := func(s string) trace.SpanID { id, _ := trace.SpanIDFromHex(s); return id }
	spans := r.sink.AllSpans()
	require.Len(t, spans, 1)
	assert.Equal(t, ingest.Span{TraceID: tid, SpanID: sid("9bb983b2ae6c1277"), Parent: sid("89abcdef01234567"), Segment: true,
		Service: "sentry.javascript.node", Start: time.UnixMicro(1796595454573368).UTC(), End: time.UnixMicro(1796595454589179).UTC()}, spans[0])
	got := up.Got()
	require.Len(t, got, 1)
	assert.Equal(t, body, got[0].Body)
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// OTLP traces, protobuf and JSON: each span is learnt with its resource's
// service.name, and the body is forwarded unchanged to the upstream's OTLP
// endpoint.
func TestOTLPTraces(t *testing.T) {
	tid, _ := trace.TraceIDFromHex(traceHex)
	root, _ := trace.SpanIDFromHex("00000000000000c1")
	child, _ := trace.SpanIDFromHex("00000000000000c2")
	data := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name",
			Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "payment"}}}}},
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
			{TraceId: tid[:], SpanId: root[:], Kind: tracev1.Span_SPAN_KIND_SERVER, ParentSpanId: []byte{0, 0, 0, 0, 0, 0, 0, 0xb2},
				StartTimeUnixNano: 1_700_000_000_000_000_000, EndTimeUnixNano: 1_700_000_001_000_000_000},
			{TraceId: tid[:], SpanId: child[:], ParentSpanId: root[:], Kind: tracev1.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: 1_700_000_000_100_000_000, EndTimeUnixNano: 1_700_000_000_900_000_000},
		}}},
	}}}
	pb, err := proto.Marshal(data)
	require.NoError(t, err)
	jsonBody := []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payment"}}]},` +
		`"scopeSpans":[{"spans":[` +
		`{"traceId":"` + traceHex + `","spanId":"00000000000000c1","parentSpanId":"00000000000000b2","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000"},` +
		`{"traceId":"` + traceHex + `","spanId":"00000000000000c2","parentSpanId":"00000000000000c1","kind":3,"startTimeUnixNano":1700000000100000000,"endTimeUnixNano":"1700000000900000000"}]}]}]}`)
	want := []ingest.Span{
		{TraceID: tid, SpanID: root, Parent: [8]byte{7: 0xb2}, Service: "payment", Segment: true,
			Start: time.Unix(1_700_000_000, 0).UTC(), End: time.Unix(1_700_000_001, 0).UTC()},
		{TraceID: tid, SpanID: child, Parent: root, Service: "payment",
			Start: time.Unix(1_700_000_000, 100_000_000).UTC(), End: time.Unix(1_700_000_000, 900_000_000).UTC()},
	}
	for _, tt := range []struct {
		contentType, want string
		body              []byte
	}{
		{"application/x-protobuf", "", pb},
		{"application/json", "{}", jsonBody},
	} {
		t.Run(tt.contentType, func(t *testing.T) {
			up := newStandIn(t, nil)
			r := newRelay(t, up.URL, nil)
			resp := r.post(t, "/api/42/integration/otlp/v1/traces", compress(t, "gzip", tt.body),
				"X-Sentry-Auth", testAuth, "Content-Type", tt.contentType, "Content-Encoding", "gzip")
			require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
			assert.Equal(t, tt.want, bodyOf(resp))
			assert.Equal(t, want, r.sink.AllSpans())
			r.Flush(t)
			got := up.Got()
			require.Len(t, got, 1)
			assert.Equal(t, "/api/42/integration/otlp/v1/traces", got[0].Path)
			assert.Equal(t, tt.body, got[0].Body)
			assert.Equal(t, tt.contentType, got[0].Header.Get("Content-Type"))
			assert.Equal(t, testAuth, got[0].Header.Get("X-Sentry-Auth"))
		})
	}
}

// Browser SDKs' CORS preflight is answered as Relay answers it, and a
// cross-origin post may read the rate-limit headers.
func TestCORS(t *testing.T) {
	r := newRelay(t, newStandIn(t, nil).URL, nil)
	req, _ := http.NewRequest(http.MethodOptions, r.URL+"/api/42/envelope/", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "POST", resp.Header.Get("Access-Control-Allow-Methods"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "x-sentry-auth")
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "content-encoding")

	resp = r.post(t, "/api/42/envelope/?sentry_key="+testKey, sessionEnvelope, "Origin", "https://shop.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "retry-after")
}

func TestHealthz(t *testing.T) {
	r := newRelay(t, newStandIn(t, nil).URL, nil)
	resp, err := http.Get(r.URL + "/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", bodyOf(resp))
	_ = resp.Body.Close()
}

// While the forwarder's queue is past three quarters full, SDKs are told
// to wait before the body is even read.
func TestBackPressureFromTheQueue(t *testing.T) {
	release := make(chan struct{})
	up := newStandIn(t, func(n int, w http.ResponseWriter) { <-release })
	r := newRelay(t, up.URL, nil, upstreamMaxBytes(int64(len(sessionEnvelope))*5/4), upstreamWorkers(1))
	defer close(release)
	resp := r.post(t, "/api/42/envelope/", sessionEnvelope, "X-Sentry-Auth", testAuth)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// Not even an envelope: a body that is not read cannot be refused as
	// malformed.
	resp = r.post(t, "/api/42/envelope/", []byte("not an envelope"), "X-Sentry-Auth", testAuth)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, bodyOf(resp))
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Equal(t, map[string]uint64{"rate_limited": 1}, r.handler.Stats().Rejected)
	assert.Equal(t, uint64(1), r.up.Stats().Received, "the second body never reached the queue")
}
