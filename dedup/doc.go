// Package dedup holds the error events of each OpenTelemetry trace for a
// short window and sends one Sentry event per incident: the root cause, as it
// was captured, annotated with the events it stands for.
//
// [Transport] is a sentry.Transport that wraps another. Install it in the
// client options, beside the sentryotel hook that stamps the trace ids it
// reads, and register sentryotel's span processor on the tracer provider so
// that each event carries the chain of spans it was captured in:
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()))
//	opts := sentryotel.WrapOptions(sentry.ClientOptions{
//		Dsn:       dsn,
//		Transport: dedup.NewTransport(sentry.NewHTTPTransport()),
//	})
//
// # Incidents
//
// An incident is one independent failure: an error and every error known to
// be its symptom. The deduplicator never sends fewer events than there are
// incidents; when in doubt, it sends. Within a trace an error is suppressed
// only when it is known to be a symptom of an error that is sent, or of an
// error a downstream service acknowledged for the call it followed from
// (below). In one process, an error captured on a span that encloses another
// error's span is its symptom ([rootcause.Split] has the exact rule); repeats
// of one origin (the same service and exception type, as a retried call that
// fails each time) are one incident. Without the span processor only the
// spans on which errors were captured link them, so fewer symptoms are known
// and more events are sent; nothing is hidden.
//
// Only error events take part: an event with an exception, or at level error
// or fatal. Messages at lower levels, transactions and events with no trace
// id go to the inner transport at once, and acknowledge nothing.
//
// # Windows
//
// A trace's window opens at its first error and lasts [DefaultWindow] unless
// [WithWindow] says otherwise, like Alertmanager's group_wait: there is no
// global tick, so a cascade is never split between two flushes. When the
// window ends the trace's errors are split into incidents and the strategy
// ([WithStrategy]) names the root cause of each ([rootcause.Incidents]). Each
// root cause is sent as it was captured (exception, stack trace, tags) with
// the tag dedup.suppressed and the context "dedup" listing the events it
// stands for; the others are suppressed.
//
// # Late events
//
// The decision for a trace is remembered for a while ([WithMemory]). An error
// of a decided trace that arrives later is judged against the errors the
// trace had: if it joins the incident of an event that was sent it is
// suppressed (counted in Stats.Late and Stats.LateSuppressed); otherwise it
// is sent. Past the memory, an error opens a new window.
//
// # Nothing lost
//
// Past a bound ([WithMaxTraces], [WithMaxEventsPerTrace]) events pass
// through, and are counted. A strategy that panics or returns a bad index
// costs nothing: every event of that trace is sent, the failure is counted
// and handed to otel.Handle. Flush, FlushWithContext and Close send every
// pending event before flushing or closing the inner transport, so
// sentry.Flush at shutdown loses nothing. At every instant Stats().Received
// == Emitted + Suppressed + Pending.
//
// # Across services
//
// A Transport sees only its own process. The acknowledgement extends it
// across services: a service that reported the error behind a failed call
// says so in its response, and its caller counts the errors that follow from
// that call as a cascade (Stats.Cascades) instead of reporting them again.
// [Transport.Incoming] and [Transport.Outgoing] are the acknowledgement's
// surface, and [Transport.Outgoing] states the exact rule; the adapters sit
// beside each other in their own packages: HTTP in deduphttp, gRPC in the
// module github.com/tracedup/tracedup/dedup/dedupgrpc. A transport of your
// own (a message queue) needs only those two methods and [ParseReported].
//
// # Delivery
//
// Emitted events are handed to the inner transport by one goroutine that
// flushes it after every [WithMaxBurst] events, so a burst of decisions never
// overflows sentry-go's HTTPTransport queue, which drops what does not fit.
package dedup
