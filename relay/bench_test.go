package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay"
)

// captured returns an error event as sentry-go serializes it: a chain of
// wrapped errors with their stack traces, about 7 KB of JSON.
func captured(tb testing.TB) []byte {
	tb.Helper()
	var ev *sentry.Event
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://public@127.0.0.1/1",
		BeforeSend: func(e *sentry.Event, _ *sentry.EventHint) *sentry.Event { ev = e; return nil }})
	require.NoError(tb, err)
	defer client.Close()
	err = errors.New("card declined by issuer")
	err = fmt.Errorf("charge: %w", err)
	err = fmt.Errorf("payment service: %w", err)
	sentry.NewHub(client, sentry.NewScope()).CaptureException(err)
	b, err := json.Marshal(ev)
	require.NoError(tb, err)
	return b
}

// eventEnvelope returns the envelope of tpl with its event id, trace and
// span set.
func eventEnvelope(tb testing.TB, tpl []byte, id, traceID, span, parent, service string) []byte {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(tpl, &m))
	m["event_id"] = id
	m["tags"] = map[string]string{"service.name": service}
	tc := map[string]any{"trace_id": traceID, "span_id": span}
	if parent != "" {
		tc["parent_span_id"] = parent
	}
	m["contexts"] = map[string]any{"trace": tc}
	payload, err := json.Marshal(m)
	require.NoError(tb, err)
	return envelope.Append(nil, []byte(`{"event_id":"`+id+`"}`),
		envelope.Item{Type: "event", Header: []byte(`{"type":"event","length":` + strconv.Itoa(len(payload)) + `}`), Payload: payload})
}

// sink is an upstream Sentry that counts what it is sent and when.
type sink struct {
	mu      sync.Mutex
	n       int
	arrived map[string]time.Time // by the envelope header's event_id
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	line, _, _ := bytes.Cut(body, []byte{'\n'})
	var h struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(line, &h)
	s.mu.Lock()
	s.n++
	if s.arrived != nil {
		s.arrived[h.EventID] = time.Now()
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// BenchmarkServer measures the whole relay per envelope, from the SDK's
// request to the upstream's, with real serialized sentry-go events: errors
// of traces of their own (each decided and forwarded), three-service
// cascades (one forwarded per three), and transactions (forwarded at once).
// Run it with -cpu 1 for envelopes per second per core.
func BenchmarkServer(b *testing.B) {
	tpl := captured(b)
	tx := []byte(`{"type":"transaction","transaction":"GET /","start_timestamp":1700000000.5,"timestamp":1700000001,` +
		`"contexts":{"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"00000000000000a1"}},"spans":[]}`)
	txEnvelope := envelope.Append(nil, []byte(`{}`), envelope.Item{Type: "transaction", Header: []byte(`{"type":"transaction"}`), Payload: tx})
	for _, bc := range []struct {
		name string
		env  func(i int) []byte
		per  int // envelopes a trace sends
	}{
		{"errors", func(i int) []byte {
			return eventEnvelope(b, tpl, fmt.Sprintf("%032x", i+1), fmt.Sprintf("%032x", i+1), "00000000000000c3", "", "payment")
		}, 1},
		{"cascades", func(i int) []byte {
			spans := [3][3]string{{"00000000000000c3", "00000000000000b2", "payment"}, {"00000000000000b2", "00000000000000a1", "order"}, {"00000000000000a1", "", "gateway"}}
			s := spans[i%3]
			return eventEnvelope(b, tpl, fmt.Sprintf("%032x", i+1), fmt.Sprintf("%032x", i/3+1), s[0], s[1], s[2])
		}, 3},
		{"transactions", func(int) []byte { return txEnvelope }, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			up := httptest.NewServer(&sink{})
			defer up.Close()
			u, _ := url.Parse(up.URL)
			srv := relay.NewServer(u, relay.Config{})
			const pool = 3 * 1024
			envs := make([][]byte, pool)
			for i := range envs {
				envs[i] = bc.env(i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(envs[0])))
			i, busy := 0, 0
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/api/1/envelope/", bytes.NewReader(envs[i%pool]))
				req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				switch rec.Code {
				case http.StatusOK:
				case http.StatusTooManyRequests:
					busy++ // the queue upstream is past three quarters: told to back off
				default:
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				i++
			}
			// Until everything taken was decided and sent upstream: the
			// rate is the relay's, not the ingest stage's alone.
			ctx, cancel := contextWithTimeout(time.Minute)
			defer cancel()
			if !srv.Flush(ctx) {
				b.Fatal("flush")
			}
			b.ReportMetric(float64(b.N-busy)/b.Elapsed().Seconds(), "envelopes/s")
			b.ReportMetric(float64(busy)/float64(b.N), "429/op")
			b.StopTimer()
			_ = srv.Shutdown(ctx)
		})
	}
}

// BenchmarkForwardedTransaction measures the delay a transaction takes
// through the relay, from the SDK's request to the upstream's, over real
// loopback HTTP, and reports its p50 and p99.
func BenchmarkForwardedTransaction(b *testing.B) {
	s := &sink{arrived: map[string]time.Time{}}
	up := httptest.NewServer(s)
	defer up.Close()
	u, _ := url.Parse(up.URL)
	srv := relay.NewServer(u, relay.Config{})
	rs := httptest.NewServer(srv)
	defer rs.Close()
	sent := map[string]time.Time{}
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("%032x", i+1)
		tx := fmt.Appendf(nil, `{"event_id":%q,"type":"transaction","transaction":"GET /","start_timestamp":1700000000.5,"timestamp":1700000001,`+
			`"contexts":{"trace":{"trace_id":%q,"span_id":"00000000000000a1"}},"spans":[]}`, id, id)
		env := envelope.Append(nil, fmt.Appendf(nil, `{"event_id":%q}`, id), envelope.Item{Type: "transaction", Header: []byte(`{"type":"transaction"}`), Payload: tx})
		req, _ := http.NewRequest(http.MethodPost, rs.URL+"/api/1/envelope/", bytes.NewReader(env))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
		sent[id] = time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		i++
	}
	b.StopTimer()
	ctx, cancel := contextWithTimeout(30 * time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	var delays []time.Duration
	for id, at := range sent {
		if got, ok := s.arrived[id]; ok {
			delays = append(delays, got.Sub(at))
		}
	}
	if len(delays) == 0 {
		b.Fatal("nothing arrived upstream")
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
