package deduphttp

import (
	"net/http"
	"unsafe"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
)

// HeaderReported is the response header that carries a service's answer,
// and HeaderCaller the request header by which a caller announces itself:
// the protocol is package dedup's (see "Across services" there).
const (
	HeaderReported = dedup.HeaderReported
	HeaderCaller   = dedup.HeaderCaller
)

// NewHandler returns middleware that tells callers, through HeaderReported,
// when an error of their request was reported to t. It answers only a
// request whose HeaderCaller announces a caller of t's fleet (one that
// calls through [NewTransport]): any other client, an external one of an
// edge service included, never sees the header, even if the handler set it
// itself. It composes with sentryhttp on either side.
//
// It works whatever the order of the OTel middleware: inside
// otelhttp.NewHandler, the request's span is in its context; around a
// router whose own OTel middleware starts the span inside it (gin with
// otelgin, echo with its OTel middleware, chi or gorilla/mux with otelhttp
// per route), it tracks the call from the first error event captured in the
// request's context (see [dedup.Incoming.BeginContext]; this needs
// sentryotel's hook, which finds it there). The outer net/http handler is
// the supported way for every net/http-based router.
//
// The header goes on the final response header (1xx responses leave it
// alone) when it is written, or when next returns without writing; an error
// captured after that is not acknowledged, and the caller reports its own.
// The writer next sees keeps every interface of w (http.Flusher,
// http.Hijacker, io.ReaderFrom...), as otelhttp's does.
func NewHandler(next http.Handler, t *dedup.Transport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw := writers.Get().(*writer)
		ctx, ok := aw.in.BeginContext(r.Context(), t)
		if !ok {
			writers.Put(aw)
			next.ServeHTTP(w, r)
			return
		}
		// No span yet: the router's own OTel middleware starts it inside
		// next, and the call is tracked from its first error event.
		waiting := ctx != r.Context()
		if waiting {
			r = r.WithContext(ctx)
		}
		aw.w, aw.wrote, aw.caller = w, false, r.Header.Get(HeaderCaller)
		aw.serve(next, r)
		aw.w, aw.caller = nil, ""
		// A handler may not use its writer after it returned, and the call
		// has ended: reuse the writer, Incoming included (if next panicked,
		// it is dropped), unless a context that may outlive the request
		// (a background goroutine's) holds the Incoming.
		if !waiting {
			writers.Put(aw)
		}
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
// of each call: the event id a downstream service of t's fleet acknowledged
// in HeaderReported, or none. It announces the caller in HeaderCaller on a
// copy of each request made in a valid span (a RoundTripper must not modify
// its request), and honours only an answer bound to that announcement: a
// server outside the fleet cannot silence the caller's errors (what it sends
// is counted in dedup.Stats.Untrusted). base nil means http.DefaultTransport.
// It composes with otelhttp.NewTransport on either side; the request's
// context must carry the trace. Calls are told apart by method, host and
// path: a later call to the same one supersedes an earlier (see
// [dedup.Transport.Outgoing]).
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
	if !trace.SpanContextFromContext(req.Context()).IsValid() {
		// Outgoing records nothing without a span: nothing to announce.
		return rt.base.RoundTrip(req)
	}
	call := rt.t.Call()
	r2 := *req
	r2.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		// Shared, but capped: an Add further down the chain appends to a
		// copy, never into req's values.
		r2.Header[k] = v[:len(v):len(v)]
	}
	r2.Header[HeaderCaller] = []string{call.Announcement()}
	resp, err := rt.base.RoundTrip(&r2)
	var id string
	if err == nil && resp != nil {
		id = call.Reported(resp.Header.Get(HeaderReported))
	}
	// The operation is method, host and path. Outgoing keeps only a copy of
	// it, so it is built on the stack: no allocation on the success path.
	var buf [256]byte
	op := append(append(append(append(buf[:0], req.Method...), ' '), req.URL.Host...), req.URL.Path...)
	rt.t.Outgoing(req.Context(), unsafe.String(unsafe.SliceData(op), len(op)), id)
	return resp, err
}
