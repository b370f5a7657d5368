package relay

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// Whatever an SDK sends as an event item, the relay neither panics nor
// loses it: one event in, one envelope upstream (it is alone in its trace,
// so nothing can suppress it), with the deduplicator's counters whole.
func FuzzRelayEvent(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	for _, seed := range []string{
		string(sdkEvent("aa000000000000000000000000000001", "payment", "PaymentDeclined", "00000000000000c3", "00000000000000f1", now)),
		`{"level":"error","tags":{"otel.trace_id":"0af7651916cd43dd8448eb211c80319c","otel.span_id":"00000000000000c3","dedup.suppressed":"99999999999999999999"}}`,
		`{"exception":[{"type":"E"}],"contexts":{"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":5},"tracedup":{"ancestors":",,","last_child":[]}}}`,
		`{"exception":{"values":null},"tags":[["a"],["b",1],[null,"x"]],"timestamp":"1e400","message":{"x":1},"logentry":{"formatted":"f"}}`,
		`{"level":"fatal","contexts":null,"tags":null,"exception":{"values":[{}]}}`,
		`{"type":"transaction"}`, `not json`, `[]`, ``, `{`,
	} {
		f.Add([]byte(seed), []byte(`{"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c"}}`))
	}
	f.Fuzz(func(t *testing.T, payload, header []byte) {
		if bytes.ContainsRune(header, '\n') {
			t.Skip("an envelope's header is one line")
		}
		up := &forwarded{}
		r := New(up, Config{Window: time.Hour})
		defer r.Close()
		req := &ingest.Request{Project: "1", Auth: ingest.Auth{Key: "public"}, EnvelopeHeader: header}
		// As the SDK framed it: a payload that holds a newline has a length.
		itemHeader := fmt.Appendf(nil, `{"type":"event","length":%d}`, len(payload))
		if err := r.Event(req, envelope.Item{Type: "event", Header: itemHeader, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !r.Flush(ctx) {
			t.Fatal("flush timed out")
		}
		st := r.Stats()
		d := st.Dedup
		if d.Received != d.Emitted+d.Suppressed+d.Pending+d.Dropped {
			t.Fatalf("invariant broken: %+v", d)
		}
		up.mu.Lock()
		n := len(up.envs)
		up.mu.Unlock()
		if n != 1 || st.Dropped != 0 || st.Unforwardable != 0 {
			t.Fatalf("%d envelopes upstream for one event, %d dropped, %d unforwardable: %+v", n, st.Dropped, st.Unforwardable, d)
		}
	})
}
