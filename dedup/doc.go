// Package dedup buffers Sentry error events per OpenTelemetry trace for a
// short window and sends one event per trace: the root cause, annotated with
// the events it stands for.
//
// [Transport] is a sentry.Transport that wraps another. Install it in the
// client options, beside the sentryotel hook that stamps the trace ids it
// reads:
//
//	opts := sentryotel.WrapOptions(sentry.ClientOptions{
//		Dsn:       dsn,
//		Transport: dedup.NewTransport(sentry.NewHTTPTransport()),
//	}, sentryotel.WithoutTraceFingerprint())
//
// # Windows
//
// A trace's window opens at its first event and lasts [DefaultWindow] unless
// [WithWindow] says otherwise, like Alertmanager's group_wait: there is no
// global tick, so a cascade is never split between two flushes. When the
// window ends the [rootcause.Strategy] picks the root cause. That event is
// sent as it was captured (exception, stack trace, tags) with the tag
// dedup.suppressed and the context "dedup" listing the events it stands for;
// the others are suppressed.
//
// # Late events
//
// The decision for a trace is remembered for a while ([WithMemory]). An event
// of a decided trace that arrives later is judged against the event that was
// sent: if the strategy picks the sent event as the root cause, the late one
// is a cascade of it and is suppressed (counted in Stats.Late and
// Stats.LateSuppressed); otherwise it is sent. Past the memory, an event opens
// a new window.
//
// # Nothing lost
//
// Events with no trace id, transactions and other non-error events go to the
// inner transport at once. Past a bound ([WithMaxTraces],
// [WithMaxEventsPerTrace]) events pass through too, and are counted. A
// strategy that panics or returns a bad index costs nothing: every event of
// that trace is sent and the failure is counted. Flush, FlushWithContext and
// Close send every pending event before flushing or closing the inner
// transport, so sentry.Flush at shutdown loses nothing. At every instant
// Stats().Received == Emitted + Suppressed + Pending.
//
// # Across services
//
// A Transport sees only its own process. [Transport.Handler] and
// [Transport.RoundTripper] extend it across services with one response
// header, [HeaderReported]: a service that reported an error of a request
// says so in its response, and its caller counts the errors it then captures
// in that trace as cascades (Stats.Cascades) instead of reporting them again.
//
// # Delivery
//
// Emitted events are handed to the inner transport by one goroutine that
// flushes it after every [WithMaxBurst] events, so a burst of decisions never
// overflows sentry-go's HTTPTransport queue, which drops what does not fit.
package dedup
