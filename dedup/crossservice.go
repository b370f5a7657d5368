package dedup

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// HeaderReported is the HTTP response header by which a service tells its
// caller that it reported the error behind the response to Sentry.
//
// The protocol: a service whose Handler served a request sets
// "Tracedup-Reported: <event id>" (32 lowercase hex digits, the Sentry event
// id) on the response when an error event of that request reached its
// Transport before the response header was written. An event reaches the
// Transport after sampling and after every BeforeSend hook, so a sampled-out
// or dropped event is never acknowledged. The id is that of the event the
// service captured or, when that event was itself a cascade, of the
// downstream event it stands behind. A caller whose RoundTripper sees the
// header treats errors it then captures in the same trace as cascades of the
// downstream event. A caller that does not understand the header ignores it,
// and a response without it changes nothing: the caller reports as usual.
// Later versions may append parameters after a ';', which callers ignore.
//
// What the caller records is per trace, not per call, and lasts as long as
// WithMemory says: once any downstream call of a trace was acknowledged,
// every error the caller captures in that trace counts as a cascade, even
// one after a retry that succeeded.
//
// Only call services you run through the RoundTripper: the header lets a
// downstream service silence its caller's errors for a trace.
//
// gRPC is not covered yet: a gRPC call carries no such header, so its caller
// reports its errors as usual and nothing is lost. Interceptors that carry
// the same value in the response metadata key "tracedup-reported" are the
// intended next step.
const HeaderReported = "Tracedup-Reported"

// TagCascadeOf is set, with WithSendCascades, on an event sent as a cascade:
// it holds the id of the downstream event it stands behind. A Sentry alert
// rule can leave out events that have it.
const TagCascadeOf = "dedup.cascade_of"

// WithSendCascades sends the caller's errors that are cascades of an error a
// downstream service reported, tagged with TagCascadeOf, instead of
// suppressing them.
func WithSendCascades() Option {
	return optionFunc(func(c *config) { c.sendCascades = true })
}

// request is one request a Handler is serving.
type request struct {
	spanID   string       // the server span, set on creation
	reported atomic.Value // string: the event id to tell the caller
}

// acknowledge records id on the request that event was captured in: the one
// whose span is the event's span or its parent, or the only one of the trace
// in flight. s.mu is held.
func acknowledge(reqs []*request, event *sentry.Event, id string) {
	e := rootcause.FromEvent(event)
	var match *request
	for _, r := range reqs {
		if r.spanID == e.SpanID {
			match = r
			break
		}
		if r.spanID == e.ParentSpanID {
			match = r
		}
	}
	if match == nil && len(reqs) == 1 {
		match = reqs[0]
	}
	if match != nil {
		match.reported.CompareAndSwap(nil, id)
	}
}

// cascade suppresses, or sends tagged, an event of a trace whose error a
// downstream service reported. s.mu is held; cascade releases it.
func (t *Transport) cascade(s *shard, event *sentry.Event, downstream string) {
	s.n.received++
	s.n.cascades++
	if !t.cfg.sendCascades {
		s.n.suppressed++
		s.mu.Unlock()
		return
	}
	s.n.pending++
	s.mu.Unlock()
	if event.Tags == nil {
		event.Tags = make(map[string]string, 1)
	}
	event.Tags[TagCascadeOf] = downstream
	t.next.SendEvent(event)
	s.handed(1)
}

// Handler returns middleware that tells callers, through HeaderReported,
// when an error of their request was reported. It needs the request's span
// in its context: put it inside otelhttp.NewHandler. It composes with
// sentryhttp on either side.
//
//	otelhttp.NewHandler(t.Handler(sentryHandler.Handle(mux)), "order")
//
// The header is set when the response header is written, so an error
// captured after that is not acknowledged and the caller reports its own.
func (t *Transport) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(r.Context())
		if !sc.IsValid() {
			next.ServeHTTP(w, r)
			return
		}
		traceID := sc.TraceID().String()
		req := &request{spanID: sc.SpanID().String()}
		s := t.shardFor(traceID)
		s.mu.Lock()
		s.live[traceID] = append(s.live[traceID], req)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			reqs := s.live[traceID]
			for i, x := range reqs {
				if x == req {
					reqs = append(reqs[:i], reqs[i+1:]...)
					break
				}
			}
			if len(reqs) == 0 {
				delete(s.live, traceID)
			} else {
				s.live[traceID] = reqs
			}
		}()
		next.ServeHTTP(&ackWriter{ResponseWriter: w, req: req}, r)
	})
}

// ackWriter sets HeaderReported when the response header is written.
type ackWriter struct {
	http.ResponseWriter
	req         *request
	wroteHeader bool
}

func (w *ackWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if id, _ := w.req.reported.Load().(string); id != "" {
			w.Header().Set(HeaderReported, id)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *ackWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher where the wrapped writer does.
func (w *ackWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *ackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RoundTripper returns an http.RoundTripper that records, for the trace of
// each request, a downstream event id announced by HeaderReported, so that
// errors this service then captures in that trace count as cascades. next
// nil means http.DefaultTransport. It composes with otelhttp.NewTransport on
// either side; the request's context must carry the trace.
func (t *Transport) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{t: t, next: next}
}

type roundTripper struct {
	t    *Transport
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if err != nil || resp == nil {
		return resp, err
	}
	id, ok := parseReported(resp.Header.Get(HeaderReported))
	if !ok {
		return resp, err
	}
	sc := trace.SpanContextFromContext(req.Context())
	if !sc.IsValid() {
		return resp, err
	}
	traceID := sc.TraceID().String()
	s := rt.t.shardFor(traceID)
	s.mu.Lock()
	s.reported.put(traceID, time.Now(), id)
	s.mu.Unlock()
	return resp, err
}

// parseReported reads a HeaderReported value: an event id of 32 hex digits,
// optionally followed by parameters after a ';'.
func parseReported(v string) (string, bool) {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) != 32 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return v, true
}
