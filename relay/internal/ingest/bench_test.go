package ingest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

type nopSink struct{}

func (nopSink) Event(*ingest.Request, envelope.Item) error { return nil }
func (nopSink) Spans(*ingest.Request, []ingest.Span)       {}

// BenchmarkHandler measures the handler alone (no network, a forwarder that
// takes everything): an error event's envelope, and a transaction's with
// ten spans, whose spans are read.
func BenchmarkHandler(b *testing.B) {
	var tx bytes.Buffer
	tx.WriteString(`{"contexts":{"trace":{"trace_id":"` + traceHex + `","span_id":"00000000000000a1"}},"start_timestamp":1700000000.5,"timestamp":1700000001,"release":"web@1","spans":[`)
	for i := range 10 {
		if i > 0 {
			tx.WriteByte(',')
		}
		tx.WriteString(`{"trace_id":"` + traceHex + `","span_id":"00000000000000b` + string(rune('0'+i)) + `","parent_span_id":"00000000000000a1","start_timestamp":1700000000.6,"timestamp":1700000000.7,"op":"db"}`)
	}
	tx.WriteString(`]}`)
	txEnvelope := []byte("{}\n{\"type\":\"transaction\"}\n" + tx.String() + "\n")
	for _, bc := range []struct {
		name string
		body []byte
	}{{"event", eventEnvelope}, {"transaction", txEnvelope}} {
		b.Run(bc.name, func(b *testing.B) {
			h := ingest.NewHandler(nopSink{}, nopForwarder{})
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/api/42/envelope/", bytes.NewReader(bc.body))
				req.Header.Set("X-Sentry-Auth", testAuth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
