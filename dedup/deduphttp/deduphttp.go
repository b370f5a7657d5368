package deduphttp

import (
	"net/http"
	"unsafe"

	"github.com/tracedup/tracedup/dedup"
)

// HeaderReported is the HTTP response header by which a service tells its
// caller that it reported the error behind the response to Sentry.
//
// The protocol: a service whose handler runs [NewHandler] sets
// "Tracedup-Reported: <event id>" (32 lowercase hex digits, the Sentry event
// id) on the final response to a request when an error event of that request
// reached its deduplicator before the response header was written. An event
// reaches the deduplicator after sampling and after every BeforeSend hook, so
// a sampled-out or dropped event is never acknowledged. The id is that of the
// event the service captured or, when that event was itself a cascade, of
// the event it stands behind. Parameters after a ';' are reserved; callers
// ignore them. A caller that does not understand the header ignores it, and
// a response without it changes nothing: the caller reports as usual.
//
// Only call services you run through [NewTransport]: the header lets a
// downstream service silence its caller's errors.
const HeaderReported = "Tracedup-Reported"

// NewHandler returns middleware that tells callers, through HeaderReported,
// when an error of their request was reported to t. It needs the request's
// span in its context: put it inside otelhttp.NewHandler. It composes with
// sentryhttp on either side.
//
// The header goes on the final response header (1xx responses leave it
// alone) when it is written, or when next returns without writing; an error
// captured after that is not acknowledged, and the caller reports its own.
// The writer next sees keeps every interface of w (http.Flusher,
// http.Hijacker, io.ReaderFrom...), as otelhttp's does.
func NewHandler(next http.Handler, t *dedup.Transport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw := writers.Get().(*writer)
		if !aw.in.Begin(r.Context(), t) {
			writers.Put(aw)
			next.ServeHTTP(w, r)
			return
		}
		aw.w, aw.wrote = w, false
		aw.serve(next, r)
		// A handler may not use its writer after it returned, and the call
		// has ended: reuse the writer, Incoming included. (If next panicked,
		// it is dropped.)
		aw.w = nil
		writers.Put(aw)
	})
}

// serve runs next with the writer and ends the call, also when next panics.
func (w *writer) serve(next http.Handler, r *http.Request) {
	defer w.in.End()
	next.ServeHTTP(w.view(), r)
	// net/http writes the header itself after a handler that wrote
	// nothing: set it now, or the caller never hears.
	w.final()
}

// NewTransport returns an http.RoundTripper that records with t the outcome
// of each call: the event id a downstream service acknowledged in
// HeaderReported, or none. base nil means http.DefaultTransport. It composes
// with otelhttp.NewTransport on either side; the request's context must carry
// the trace. Calls are told apart by method, host and path: a later call to
// the same one supersedes an earlier (see [dedup.Transport.Outgoing]).
func NewTransport(base http.RoundTripper, t *dedup.Transport) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &roundTripper{t: t, base: base}
}

type roundTripper struct {
	t    *dedup.Transport
	base http.RoundTripper
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	var id string
	if err == nil && resp != nil {
		id, _ = dedup.ParseReported(resp.Header.Get(HeaderReported))
	}
	// The operation is method, host and path. Outgoing keeps only a copy of
	// it, so it is built on the stack: no allocation on the success path.
	var buf [256]byte
	op := append(append(append(append(buf[:0], req.Method...), ' '), req.URL.Host...), req.URL.Path...)
	rt.t.Outgoing(req.Context(), unsafe.String(unsafe.SliceData(op), len(op)), id)
	return resp, err
}
