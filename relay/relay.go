package relay

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
	"github.com/tracedup/tracedup/relay/internal/spans"
	"github.com/tracedup/tracedup/rootcause"
)

// Defaults of the relay's settings.
const (
	// DefaultMaxBytes is the relay's memory budget: 3/4 for the
	// deduplicator (events held, queues, decisions), 1/8 for the span
	// trees, 1/8 for the queue upstream.
	DefaultMaxBytes = 512 << 20
	// DefaultWindow is the longest a trace's errors are held: longer than
	// in one process, since a trace's services send to the relay each at
	// its own pace.
	DefaultWindow = 10 * time.Second
	// DefaultGrace is how long after a trace's spans arrived (every error's
	// span, up to a service's entry span) the trace is decided: long enough
	// for the last services' error events, sent beside their transactions.
	DefaultGrace = time.Second
	// spanTTL is how long a trace's spans are kept after they were last
	// added to: as long as decisions are remembered.
	spanTTL = dedup.DefaultMemory
)

// Config configures a Relay. The zero value of each field means its default.
type Config struct {
	// MaxBytes is the memory budget (DefaultMaxBytes).
	MaxBytes int64
	// Window and Grace are the deduplicator's window and the grace after a
	// trace's spans arrived (DefaultWindow, DefaultGrace).
	Window, Grace time.Duration
	// CascadeTypes, when set, are the exception types the services wrap a
	// failed call in: only errors of those types follow from another
	// service's failure (see dedup.WithCascadeTypes).
	CascadeTypes []string
	// Options are more options for the deduplicator, applied last.
	Options []dedup.Option
	// MeterProvider is where the relay's metrics go: the global provider
	// when nil.
	MeterProvider metric.MeterProvider
}

// Forwarder sends envelopes upstream, never blocking: it reports false when
// it drops one (its queue is full, the category is rate limited upstream).
type Forwarder interface {
	Send(req *ingest.Request, envelope []byte, categories []string) bool
	Flush(ctx context.Context) bool
}

// Relay deduplicates the error events that pass through it per incident,
// across every service that sends to it, and hands everything to a
// Forwarder. It is the ingest stage's Sink.
type Relay struct {
	up    Forwarder
	dedup *dedup.Transport
	tree  *spans.Tree
	// Events that could not be forwarded: rejected upstream queue, or an
	// event that lost what it rides on (which cannot happen).
	dropped, unforwardable atomic.Uint64
}

var _ ingest.Sink = (*Relay)(nil)

// New returns a Relay that forwards to up.
func New(up Forwarder, cfg Config) *Relay {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	r := &Relay{up: up}
	r.tree = spans.New(cfg.MaxBytes/8, spanTTL, func(id trace.TraceID) { r.dedup.TraceComplete(id) })
	options := []dedup.Option{
		dedup.WithMaxBytes(cfg.MaxBytes * 3 / 4),
		dedup.WithWindow(cfg.Window),
		dedup.WithRequestGrace(cfg.Grace),
		dedup.WithSpanSource(r.tree),
		dedup.WithCascadeTypes(cfg.CascadeTypes...),
		dedup.WithMeterProvider(cfg.MeterProvider),
	}
	r.dedup = dedup.NewTransport(upstreamTransport{r}, append(options, cfg.Options...)...)
	return r
}

// Event implements ingest.Sink: it hands an error event to the
// deduplicator, which sends upstream one per incident.
func (r *Relay) Event(req *ingest.Request, item envelope.Item) error {
	ev, err := decodeEvent(item.Payload, traceOfEnvelope(req.EnvelopeHeader), req)
	if err != nil {
		// Not an event the relay can read: Sentry judges it, as it came.
		env := envelope.Append(nil, envelopeHeader(req.EnvelopeHeader, ""), item)
		if !r.up.Send(req, env, []string{"error"}) {
			r.dropped.Add(1)
		}
		return nil
	}
	r.dedup.SendEvent(ev)
	// After SendEvent: a trace whose spans are all here already is
	// complete at once, and its window must exist to be told. The trace
	// and span are those the deduplicator holds the event under: its tags
	// before its trace context, as rootcause.FromEvent reads them.
	e := rootcause.FromEvent(ev)
	if id, err := trace.TraceIDFromHex(e.TraceID); err == nil {
		if span, err := trace.SpanIDFromHex(e.SpanID); err == nil {
			r.tree.Expect(id, span, time.Now())
		}
	}
	return nil
}

// Spans implements ingest.Sink: it learns the span tree.
func (r *Relay) Spans(_ *ingest.Request, s []ingest.Span) { r.tree.Add(s, time.Now()) }

// Flush decides every held trace and waits until what it sends is queued
// upstream and the forwarder flushed, or ctx ends.
func (r *Relay) Flush(ctx context.Context) bool { return r.dedup.FlushWithContext(ctx) }

// Close decides and forwards what the relay holds, within the
// deduplicator's close timeout.
func (r *Relay) Close() { r.dedup.Close() }

// Stats is what the relay counts.
type Stats struct {
	// Dedup is the deduplicator's counters: Received == Emitted +
	// Suppressed + Pending + Dropped.
	Dedup dedup.Stats
	// Dropped counts events the deduplicator emitted that the forwarder
	// refused (its queue full, rate limited upstream); Unforwardable those
	// that lost their original JSON (a bug if ever not zero).
	Dropped, Unforwardable uint64
	// SpanBytes is what the span trees hold now.
	SpanBytes int64
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{Dedup: r.dedup.Stats(), Dropped: r.dropped.Load(), Unforwardable: r.unforwardable.Load(), SpanBytes: r.tree.Bytes()}
}

// upstreamTransport is the deduplicator's inner transport: it forwards each
// event it is handed as the SDK sent it, with the deduplicator's tags and
// context patched in, in an envelope with the original header.
type upstreamTransport struct{ r *Relay }

func (u upstreamTransport) SendEvent(ev *sentry.Event) {
	raw, o, ok := carried(ev)
	if !ok {
		u.r.unforwardable.Add(1)
		return
	}
	body, err := patch(raw, ev)
	if err != nil {
		body = raw // the annotation is lost, not the event
	}
	item := envelope.Item{Type: "event", Header: []byte(`{"type":"event","length":` + strconv.Itoa(len(body)) + `}`), Payload: body}
	env := envelope.Append(nil, envelopeHeader(o.EnvelopeHeader, string(ev.EventID)), item)
	if !u.r.up.Send(o.request(), env, []string{"error"}) {
		u.r.dropped.Add(1)
	}
}

func (u upstreamTransport) Flush(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return u.FlushWithContext(ctx)
}
func (u upstreamTransport) FlushWithContext(ctx context.Context) bool { return u.r.up.Flush(ctx) }
func (u upstreamTransport) Configure(sentry.ClientOptions)            {}
func (u upstreamTransport) Close()                                    {}

// traceOfEnvelope returns the trace id of an envelope header's dynamic
// sampling context, "" if none.
func traceOfEnvelope(header []byte) string {
	var h struct {
		Trace struct {
			TraceID string `json:"trace_id"`
		} `json:"trace"`
	}
	if json.Unmarshal(header, &h) != nil {
		return ""
	}
	return h.Trace.TraceID
}

// envelopeHeader returns header when it is a JSON object, else one with the
// event id.
func envelopeHeader(header []byte, eventID string) []byte {
	var m map[string]json.RawMessage
	if len(header) > 0 && json.Unmarshal(header, &m) == nil && m != nil { // "null" is no object
		return header
	}
	// json.Marshal, not %q: an id read from an SDK's event may hold what
	// Go quotes and JSON does not read (\x7f).
	b, _ := json.Marshal(struct {
		EventID string `json:"event_id"`
		SentAt  string `json:"sent_at"`
	}{eventID, time.Now().UTC().Format(time.RFC3339Nano)})
	return b
}
