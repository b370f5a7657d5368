package dedup_test

import (
	"context"
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
	"github.com/tracedup/tracedup/sentryotel"
)

func ExampleNewTransport() {
	inner := sentrytest.NewTransport() // in real code: sentry.NewHTTPTransport(), or nil for it
	tr := dedup.NewTransport(inner)
	defer tr.Close()

	// One request's errors as sentryotel stamps them, in the order they are
	// captured: payment declines the card, so order's call to payment fails,
	// so gateway's call to order fails. All three carry the same trace id.
	for _, ev := range cascade(traceA) {
		tr.SendEvent(ev)
	}
	// The trace's window would end 5 s after its first event; Flush, as
	// sentry.Flush does at shutdown, ends it now.
	tr.Flush(time.Second)

	sent := inner.Events()
	fmt.Println("events sent:", len(sent))
	root := sent[0]
	fmt.Println("service:", root.Tags[sentryotel.TagServiceName])
	fmt.Println("exception:", root.Exception[0].Type)
	fmt.Println(dedup.TagSuppressed+":", root.Tags[dedup.TagSuppressed])
	report := root.Contexts[dedup.ContextKey]
	for _, e := range report["events"].([]map[string]string) {
		fmt.Println("stands for:", e["service"], e["exception_type"])
	}
	fmt.Println("strategy:", report["strategy"])
	// Output:
	// events sent: 1
	// service: payment
	// exception: *main.PaymentDeclined
	// dedup.suppressed: 2
	// stands for: order *main.ServiceCallFailed
	// stands for: gateway *main.DownstreamError
	// strategy: Deepest{tie:Earliest}
}

func ExampleWithStrategy() {
	// Blame the payment service whenever it reported an error, since every
	// other service calls it; otherwise let the default decide.
	preferPayment := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
		for i, e := range errs {
			if e.Service == "payment" {
				return i
			}
		}
		return rootcause.Default().RootCause(errs)
	})

	inner := sentrytest.NewTransport()
	tr := dedup.NewTransport(inner, dedup.WithStrategy(preferPayment))
	defer tr.Close()

	// The cascade arrives gateway first, order, then payment.
	events := cascade(traceA)
	for i := range events {
		tr.SendEvent(events[len(events)-1-i])
	}
	tr.Flush(time.Second)

	root := inner.Events()[0]
	fmt.Println("root cause:", root.Tags[sentryotel.TagServiceName], root.Exception[0].Value)
	fmt.Println("strategy:", root.Contexts[dedup.ContextKey]["strategy"])
	// Output:
	// root cause: payment payment failed
	// strategy: rootcause.StrategyFunc
}

func ExampleTransport_Stats() {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()

	for _, ev := range cascade(traceA) {
		tr.SendEvent(ev)
	}
	tr.SendEvent(sentry.NewEvent()) // no trace id: queued for the inner transport

	s := tr.Stats()
	fmt.Printf("received %d; %d trace held, %d event passed through\n", s.Received, s.Traces, s.PassedThrough)
	tr.Flush(time.Second)
	s = tr.Stats()
	fmt.Printf("received %d = emitted %d + suppressed %d + pending %d + dropped %d\n",
		s.Received, s.Emitted, s.Suppressed, s.Pending, s.Dropped)
	// Output:
	// received 4; 1 trace held, 1 event passed through
	// received 4 = emitted 2 + suppressed 2 + pending 0 + dropped 0
}

// A caller's errors after a call the downstream acknowledged: with
// WithCascadeTypes only the type the code wraps a failed call in counts as a
// cascade; its own bug in the same span is reported.
func ExampleWithCascadeTypes() {
	tp := sentrytest.TracerProvider("gateway")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	inner := sentrytest.NewTransport()
	tr := dedup.NewTransport(inner, dedup.WithCascadeTypes("DownstreamError"))
	defer tr.Close()

	ctx, span := tp.Tracer("example").Start(context.Background(), "GET /home")
	// What deduphttp's RoundTripper records when payment answers with
	// Tracedup-Reported: the call failed, and payment reported why.
	tr.Outgoing(ctx, "POST payment:8080/charge", "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b")

	sc := span.SpanContext()
	for _, typ := range []string{"*main.DownstreamError", "runtime.Error"} {
		ev := errEvent(sc.TraceID().String(), sc.SpanID().String(), "", "gateway", typ)
		tr.SendEvent(ev)
	}
	span.End()
	tr.Flush(time.Second)

	for _, ev := range inner.Events() {
		fmt.Println("sent:", ev.Exception[0].Type)
	}
	fmt.Println("cascades:", tr.Stats().Cascades)
	// Output:
	// sent: runtime.Error
	// cascades: 1
}

// Two teams whose services report to two Sentry organisations trust each
// other's acknowledgements when both give their Transports the same key; a
// service without it is answered nothing, even in the same organisation as
// one of them.
func ExampleWithFleetKey() {
	key := []byte("a secret the two teams share") // in real code: from a secret store
	newService := func(dsn string, options ...dedup.Option) *dedup.Transport {
		tr := dedup.NewTransport(sentrytest.NewTransport(), options...)
		tr.Configure(sentry.ClientOptions{Dsn: dsn}) // as sentry.NewClient does
		return tr
	}
	payment := newService("https://key@o202.ingest.us.sentry.io/1", dedup.WithFleetKey(key))
	order := newService("https://key@o101.ingest.us.sentry.io/1", dedup.WithFleetKey(key))
	shipping := newService("https://key@o101.ingest.us.sentry.io/2")
	defer payment.Close()
	defer order.Close()
	defer shipping.Close()

	// Payment serves a call and reports its error, as its handler's
	// capture would through deduphttp or dedupgrpc.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{0xc3}, TraceFlags: trace.FlagsSampled}))
	in := payment.Incoming(ctx)
	defer in.End()
	ev := sentry.NewEvent()
	ev.EventID = "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b"
	ev.Level = sentry.LevelError
	ev.Exception = []sentry.Exception{{Type: "*main.PaymentDeclined"}}
	ev.Tags[sentryotel.TagTraceID] = traceID.String()
	ev.Tags[sentryotel.TagSpanID] = trace.SpanID{0xc3}.String()
	payment.SendEvent(ev)

	for _, caller := range []struct {
		name string
		t    *dedup.Transport
	}{{"order", order}, {"shipping", shipping}} {
		call := caller.t.Call()
		answer := in.Answer(call.Announcement()) // what payment sends back
		fmt.Printf("%s: answered %t, acknowledged %q\n", caller.name, answer != "", call.Reported(answer))
	}
	// Output:
	// order: answered true, acknowledged "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b"
	// shipping: answered false, acknowledged ""
}

// parents is a SpanSource of parent links, as a relay learns them from the
// transactions of a trace's services.
type parents map[trace.SpanID]trace.SpanID

func (p parents) Enclosing(_ trace.TraceID, span trace.SpanID, _ time.Time) (dedup.SpanLinks, bool) {
	var links dedup.SpanLinks
	for s, ok := p[span]; ok; s, ok = p[s] {
		links.Ancestors = append(links.Ancestors, s)
	}
	return links, len(links.Ancestors) > 0
}

func ExampleWithSpanSource() {
	span := func(s string) trace.SpanID { id, _ := trace.SpanIDFromHex(s); return id }
	// Each service's event names only its own span and its parent: the
	// calls between services (order's client span e1 called payment's
	// server span f1) are known only from the spans, which arrive apart.
	tree := parents{}
	inner := sentrytest.NewTransport()
	tr := dedup.NewTransport(inner, dedup.WithSpanSource(tree))
	defer tr.Close()
	tr.SendEvent(errEvent(traceA, "00000000000000c3", "00000000000000f1", "payment", "*main.PaymentDeclined"))
	tr.SendEvent(errEvent(traceA, "00000000000000b2", "", "order", "*main.ServiceCallFailed"))

	// The spans come: payment's c3 in its server span f1, called by order's
	// client span e1, in order's handler b2.
	tree[span("00000000000000c3")] = span("00000000000000f1")
	tree[span("00000000000000f1")] = span("00000000000000e1")
	tree[span("00000000000000e1")] = span("00000000000000b2")
	id, _ := trace.TraceIDFromHex(traceA)
	tr.TraceComplete(id) // decided a grace from now
	tr.Flush(time.Second)

	for _, ev := range inner.Events() {
		fmt.Println(ev.Tags[sentryotel.TagServiceName], ev.Exception[0].Type, "stands for", ev.Tags[dedup.TagSuppressed])
	}
	// Output:
	// payment *main.PaymentDeclined stands for 1
}
