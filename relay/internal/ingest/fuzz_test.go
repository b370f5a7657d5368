package ingest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// nopForwarder takes everything and never asks anyone to wait.
type nopForwarder struct{}

func (nopForwarder) Send(*ingest.Request, []byte, []string) bool           { return true }
func (nopForwarder) SendOTLP(*ingest.Request, []byte, string, string) bool { return true }
func (nopForwarder) RetryAfter([]string) time.Duration                     { return 0 }

// FuzzIngest: whatever the body, encoding, endpoint and auth, the handler
// answers with a status it documents and never panics; the spans it learns
// have valid ids.
func FuzzIngest(f *testing.F) {
	f.Add(sessionEnvelope, "", uint8(0), testAuth)
	f.Add(eventEnvelope, "", uint8(0), testAuth)
	f.Add([]byte(errorEvent), "", uint8(1), testAuth)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"`+traceHex+`","spanId":"00000000000000c1"}]}]}]}`), "", uint8(3), testAuth)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, "", uint8(2), testAuth)
	f.Add([]byte("{}\n{\"type\":\"transaction\",\"length\":2}\n{}\n"), "gzip", uint8(0), "")
	f.Add([]byte("{\"dsn\":\"http://k@h/1\"}\n{\"type\":\"span\"}\n{\"items\":[{\"trace_id\":1}]}\n"), "deflate", uint8(0), "")
	f.Add([]byte("x"), "br", uint8(0), testAuth)
	f.Add([]byte("x"), "zstd", uint8(1), testAuth)
	f.Add([]byte("eJzLSM3JyQcABiwCFQ=="), "", uint8(1), testAuth) // base64 of zlib, as old SDKs sent store bodies
	f.Add([]byte("eA=="), "", uint8(1), testAuth)                 // base64 of 0x78, half a zlib header
	paths := []string{"/api/42/envelope/", "/api/42/store/", "/api/42/integration/otlp/v1/traces", "/api/42/integration/otlp/v1/traces/", "/healthz", "/api/42/envelope"}
	statuses := []int{200, 400, 401, 404, 405, 413, 415, 429}
	h := ingest.NewHandler(&checkingSink{}, nopForwarder{}, ingest.WithLimits(ingest.Limits{MaxEnvelopeSize: 1 << 20}))
	f.Fuzz(func(t *testing.T, body []byte, encoding string, path uint8, auth string) {
		req := httptest.NewRequest(http.MethodPost, paths[int(path)%len(paths)], bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("X-Sentry-Auth", auth)
		}
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		if int(path)%len(paths) == 3 {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-protobuf")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !slices.Contains(statuses, rec.Code) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// checkingSink panics on a span without valid ids, which the fuzzer then
// reports.
type checkingSink struct{}

func (checkingSink) Event(*ingest.Request, envelope.Item) error { return nil }

func (checkingSink) Spans(_ *ingest.Request, spans []ingest.Span) {
	for _, s := range spans {
		if !s.TraceID.IsValid() || !s.SpanID.IsValid() {
			panic("a span without valid ids")
		}
	}
}
