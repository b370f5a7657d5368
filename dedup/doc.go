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
// error's span is its symptom, unless (with the span processor) that span had
// carried on past the failure to another child, a retry that succeeded or a
// later step ([rootcause.Split] has the exact rule); repeats
// of one origin (the same service and exception type, as a retried call that
// fails each time) are one incident. Without the span processor only the
// spans on which errors were captured link them, so fewer symptoms are known
// and more events are sent; nothing is hidden.
//
// A caller that degrades gracefully after a failed call and then fails on
// its own, with no further call or span, cannot be told from a cascade by the
// links alone; [WithCascadeTypes] names the exception types the code wraps a
// failed call in, and only those then follow from another service's failure.
//
// Only error events take part: an event with an exception, or at level error
// or fatal. Messages at lower levels, transactions and events with no trace
// id go to the inner transport at once, and acknowledge nothing.
//
// # Windows
//
// A trace's window opens at its first error. It ends, and the trace is
// decided, at the first of:
//   - the end of the last call of the trace that this process serves, plus a
//     short grace ([WithRequestGrace], [DefaultRequestGrace]): an adapter
//     (deduphttp, dedupgrpc) calls [Incoming.End] when its handler returns,
//     and the in-process cascade of the call is then complete. A report
//     follows its request's end by the grace and the time to decide it;
//   - the window ([WithWindow], [DefaultWindow]), the upper bound, for errors
//     captured outside any served call. Like Alertmanager's group_wait there
//     is no global tick, so a cascade is never split between two flushes;
//   - a bound (below), which decides the oldest trace early.
//
// The trace's errors are then split into incidents and the strategy
// ([WithStrategy]) names the root cause of each ([rootcause.Incidents]). Each
// root cause is sent as it was captured (exception, stack trace, tags) with
// the tag dedup.suppressed and the context "dedup" listing the events it
// stands for; the others are suppressed. Strategies run on a goroutine of the
// Transport's own, never on the caller's.
//
// # Late events
//
// The decision for a trace is remembered for a while ([WithMemory]), as a
// summary of at most 16 of its errors without their events. An error of a
// decided trace that arrives later is judged against the errors the trace
// had: if it joins the incident of an event that was sent it is suppressed
// (counted in Stats.Late and Stats.LateSuppressed); otherwise it is sent.
// A trace's late events wait together and are judged together, up to 48 in
// one strategy call beside the 16 remembered errors: of a new incident among
// them, one is sent and stands for the others. So a storm in one trace (a
// retry loop failing thousands of times) costs one call per 48 events, and
// is one report per incident. Past the memory, an error opens a new window.
//
// # What is bounded
//
// Memory is bounded in bytes: [WithMaxBytes] ([DefaultMaxBytes], 128 MiB)
// covers everything the Transport holds. Each event is weighed on arrival
// by an estimate of the heap it holds (its structs, and the strings of its
// exceptions and frames with their context lines and vars, breadcrumbs,
// request, tags, contexts, modules, user and attachments: within 15% of the
// heap measured for events of 13 KB to 1 MB). The budget is shared out, and
// each part degrades on its own, in this order:
//   - windows, 5/8 of it, at most half of that in windows still open: a
//     shard past its share decides its oldest trace early
//     (Stats.DecidedEarly), whose later events are judged as late ones;
//     when windows due for a decision fill the rest because the decisions
//     do not keep up, an error passes through undecided (Stats.Overflow).
//     [WithMaxHeldEvents], [WithMaxTraces] and [WithMaxEventsPerTrace]
//     bound the counts as well.
//   - late events waiting to be judged, 1/16 (and [WithMaxQueueSize]
//     events): past it they are sent undecided (Stats.Overflow).
//   - events waiting for the inner transport, 1/8 (and [WithMaxQueueSize],
//     sentry-go's own 1,000): past it events are dropped and counted in
//     Stats.QueueFull, as OTel's BatchSpanProcessor drops spans; never an
//     event that acknowledged a call (below).
//   - decisions remembered, 1/16 (and [WithMemory]'s count and time), and
//     the acknowledgement's records of calls made, 1/16: past them the
//     oldest is forgotten. A late event of a forgotten trace opens a new
//     window; a forgotten call explains nothing, and its caller's error is
//     sent.
//
// An error known to follow from, or to repeat, an error its window holds
// keeps only its summary: its event's body is let go at once. Once a trace
// is decided only summaries are kept, and a late repeat of its report is
// suppressed on arrival, without a strategy call. The calls served at once
// that the acknowledgement tracks are bounded by [WithMaxCalls]
// ([DefaultMaxCalls], 65,536; 64 per trace), each a few dozen bytes.
//
// # Nothing lost silently
//
// At every instant Stats().Received == Emitted + Suppressed + Pending +
// Dropped, and Dropped is the sum of the counters that say why: QueueFull,
// InnerPanics (the inner transport's SendEvent panicked; the value and the
// stack go to otel.Handle), Abandoned (Close's deadline passed) and
// AfterClose (sent after Close, which is not handed to the closed inner
// transport). A strategy that panics or returns a bad index costs nothing:
// every event it was asked about is sent (but for those known, by
// rootcause.Follows, to follow from one of them, whose bodies were let go as
// they arrived), the failure is counted in Stats.StrategyFailures and handed
// to otel.Handle.
//
// # What is held
//
// Should a strategy name an error without its body (a known symptom or a
// repeat) an incident's root cause, the error it follows from or repeats is
// sent in its place.
//
// # Never hurting the host
//
// SendEvent never blocks and never calls the inner transport or the
// strategy: everything it sends goes through the bounded queue of one
// goroutine, and every strategy call runs on another. When their queues are
// half full it yields its processor (runtime.Gosched), so that in a storm
// that keeps every processor busy they are not starved. A panic in the inner
// transport is recovered. Flush and FlushWithContext decide every held trace
// and return once everything pending was handed over and the inner transport
// flushed, or return false when their deadline passes, even while a strategy
// or the inner transport is still busy. Close does the same within
// [WithCloseTimeout] ([DefaultCloseTimeout], 5 s, as sentry-go's Client.Close
// gives its own buffers) and counts what it could not hand over as
// Stats.Abandoned; a goroutine stuck in user code ends when that call
// returns.
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
// own (a message queue) needs only those two methods, [Transport.Call] and
// [Incoming.Answer]; [Incoming.Begin] is Transport.Incoming without the
// allocation, for an adapter that pools its per-request state, as deduphttp
// and dedupgrpc do.
//
// The protocol. A caller announces itself on each call it makes in a span:
//
//	Tracedup-Caller: n=<nonce>;m=<tag>          (HTTP request header, HeaderCaller)
//	tracedup-caller: n=<nonce>;m=<tag>          (gRPC request metadata, MetadataCaller)
//
// where nonce is 16 random bytes of the call's own and tag is
// HMAC-SHA256(fleet key, "caller\x00" + nonce) truncated to 16 bytes, both
// in 32 hex digits. A service whose error event of the call reached its
// deduplicator (after sampling and every BeforeSend hook, so a sampled-out
// or dropped event is never acknowledged) answers a caller whose tag
// verifies, on the final response:
//
//	Tracedup-Reported: <event id>;m=<tag>       (HTTP response header, HeaderReported)
//	tracedup-reported: <event id>;m=<tag>       (gRPC trailer, TrailerReported)
//
// where event id is the Sentry event id (32 lowercase hex digits) of the
// event the service captured or, when that event was a cascade, of the
// event it stands behind, and tag is HMAC-SHA256(fleet key, "reported\x00"
// + nonce + event id) truncated to 16 bytes. The caller honours an answer
// only when its tag verifies against its own call's nonce. Parameters are
// name=value after a ';', in any order; unknown ones are ignored. A client
// that does not announce itself, or whose announcement does not verify, is
// told nothing; an answer that does not verify is no acknowledgement, and is
// counted in Stats.Untrusted. Either way the caller reports its own errors.
//
// Trust. An acknowledgement silences the caller's errors, so it is honoured
// only from a service of the caller's fleet: the services that share its
// fleet key. By default the key is derived from the host of the client's
// DSN, which [Transport.Configure] receives from sentry-go: for sentry.io
// the organisation (o<id>.ingest.<region>.sentry.io), for a self-hosted
// Sentry its host and port. Every service of one organisation is one fleet
// with no configuration; a stranger (any third-party API) and a partner
// running tracedup with its own Sentry are not, and can neither silence a
// caller nor read its event ids. A Transport with no DSN (or not yet
// configured) is of the fleet of no DSN. The DSN is no secret (a browser
// SDK publishes it): [WithFleetKey] gives a fleet a real MAC key instead,
// for teams whose DSN is public or who trust a partner on purpose. What it
// does not stop: a server we call sees one announcement, and could replay it
// to a service of ours to be answered for its own request (to read the event
// id of its failure; it still cannot forge an answer to any caller).
//
// An acknowledgement silences a caller's error, so it is given only for what
// will get through: an error event acknowledges its call only after it was
// admitted, and only while the Transport is sure of its delivery (it is not
// closing, its queue to the inner transport and its queue of late events
// are under a quarter full, no
// flush of the inner transport has taken 5 s or failed, nothing was dropped
// or sent undecided in the last 30 s). Otherwise it acknowledges nothing and
// counts the event in Stats.NotAcknowledged: the caller reports its own
// error. An acknowledged event, and the report that stands for it, is never
// dropped by a bound: it is queued past the queue's bounds, ahead of the
// others, and Close cuts a burst's flush short to hand it over first.
//
// # Delivery
//
// Emitted events are handed to the inner transport by one goroutine that
// flushes it after every [WithMaxBurst] events, so a burst of decisions never
// overflows sentry-go's HTTPTransport queue, which drops what does not fit.
//
// Wrapping sentry-go's own transport has two costs, in sentry-go v0.46.2.
// The client injects its client-report recorder only into the transports it
// knows (*sentry.HTTPTransport, *sentry.HTTPSyncTransport) through unexported
// fields, so a wrapped HTTPTransport keeps a no-op recorder: what it drops
// (queue overflow, rate limits, network errors) is not sent to Sentry as
// client reports. And a client with a custom Transport does not use its
// telemetry buffer. Nothing here can reach those fields; watch Stats and the
// metrics (tracedup.dedup.*) instead, which count what the Transport drops.
package dedup
