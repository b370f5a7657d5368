package deduphttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync"

	"github.com/tracedup/tracedup/dedup"
)

// writer is the ResponseWriter that NewHandler's handler sees: it sets
// HeaderReported once, as the final header is written. Writers are pooled,
// since a handler may not use its ResponseWriter after ServeHTTP returns: on
// the success path the middleware then allocates nothing of its own (the
// dedup.Incoming lives in the writer too).
//
// What the handler can do with it is what it could do with the writer it
// wraps: view returns, for each combination of the optional interfaces
// (http.Flusher, http.Hijacker, io.ReaderFrom, http.Pusher) that the wrapped
// writer has, a value with exactly those, as httpsnoop.Wrap does. Deadlines
// and full duplex go through http.ResponseController, which finds the
// wrapped writer by Unwrap; its Flush goes through FlushError, which fails
// where the wrapped writer cannot flush.
type writer struct {
	w http.ResponseWriter
	// in is the call being served, tracked in the writer's own memory so
	// that the middleware allocates nothing per request.
	in    dedup.Incoming
	wrote bool
	// caller is the request's HeaderCaller: the announcement an answer is
	// bound to, "" when the client did not announce itself.
	caller string
	// views holds the writer in each combination of interfaces, made once
	// per pooled writer (an interface of a struct of pointers allocates).
	views [1 << 4]http.ResponseWriter
	// wrappedType is the type of the last writer wrapped, and wrappedIndex
	// the index of its view.
	wrappedType  reflect.Type
	wrappedIndex int
}

var writers = sync.Pool{New: func() any { return new(writer) }}

// The optional interfaces, as bits of a view's index.
const (
	hasFlusher = 1 << iota
	hasHijacker
	hasReaderFrom
	hasPusher
)

// view returns w as a ResponseWriter with the optional interfaces of the
// writer it wraps.
func (w *writer) view() http.ResponseWriter {
	// A server hands every request a writer of one type: ask the type
	// assertions again only when the type changes.
	t := reflect.TypeOf(w.w)
	if t != w.wrappedType {
		w.wrappedType, w.wrappedIndex = t, viewIndex(w.w)
	}
	i := w.wrappedIndex
	if w.views[i] == nil {
		w.views[i] = makeView(w, i)
	}
	return w.views[i]
}

// viewIndex returns the bits of the optional interfaces that w has.
func viewIndex(w http.ResponseWriter) int {
	var i int
	if _, ok := w.(http.Flusher); ok {
		i |= hasFlusher
	}
	if _, ok := w.(http.Hijacker); ok {
		i |= hasHijacker
	}
	if _, ok := w.(io.ReaderFrom); ok {
		i |= hasReaderFrom
	}
	if _, ok := w.(http.Pusher); ok {
		i |= hasPusher
	}
	return i
}

// The methods of each optional interface, on a type of their own so that a
// view gets them by embedding.
type (
	flusher    struct{ x *writer }
	hijacker   struct{ x *writer }
	readerFrom struct{ x *writer }
	pusher     struct{ x *writer }
)

func (f flusher) Flush() {
	f.x.final()
	f.x.w.(http.Flusher).Flush()
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// No header is written on a hijacked connection: nothing to set.
	h.x.wrote = true
	return h.x.w.(http.Hijacker).Hijack()
}

func (r readerFrom) ReadFrom(src io.Reader) (int64, error) {
	r.x.final()
	return r.x.w.(io.ReaderFrom).ReadFrom(src)
}

func (p pusher) Push(target string, opts *http.PushOptions) error {
	return p.x.w.(http.Pusher).Push(target, opts)
}

// makeView returns w with the optional interfaces whose bits are set in i.
func makeView(w *writer, i int) http.ResponseWriter {
	f, h, r, p := flusher{w}, hijacker{w}, readerFrom{w}, pusher{w}
	switch i {
	case 0:
		return w
	case hasFlusher:
		return struct {
			*writer
			flusher
		}{w, f}
	case hasHijacker:
		return struct {
			*writer
			hijacker
		}{w, h}
	case hasFlusher | hasHijacker:
		return struct {
			*writer
			flusher
			hijacker
		}{w, f, h}
	case hasReaderFrom:
		return struct {
			*writer
			readerFrom
		}{w, r}
	case hasFlusher | hasReaderFrom:
		return struct {
			*writer
			flusher
			readerFrom
		}{w, f, r}
	case hasHijacker | hasReaderFrom:
		return struct {
			*writer
			hijacker
			readerFrom
		}{w, h, r}
	case hasFlusher | hasHijacker | hasReaderFrom:
		return struct {
			*writer
			flusher
			hijacker
			readerFrom
		}{w, f, h, r}
	case hasPusher:
		return struct {
			*writer
			pusher
		}{w, p}
	case hasFlusher | hasPusher:
		return struct {
			*writer
			flusher
			pusher
		}{w, f, p}
	case hasHijacker | hasPusher:
		return struct {
			*writer
			hijacker
			pusher
		}{w, h, p}
	case hasFlusher | hasHijacker | hasPusher:
		return struct {
			*writer
			flusher
			hijacker
			pusher
		}{w, f, h, p}
	case hasReaderFrom | hasPusher:
		return struct {
			*writer
			readerFrom
			pusher
		}{w, r, p}
	case hasFlusher | hasReaderFrom | hasPusher:
		return struct {
			*writer
			flusher
			readerFrom
			pusher
		}{w, f, r, p}
	case hasHijacker | hasReaderFrom | hasPusher:
		return struct {
			*writer
			hijacker
			readerFrom
			pusher
		}{w, h, r, p}
	default:
		return struct {
			*writer
			flusher
			hijacker
			readerFrom
			pusher
		}{w, f, h, r, p}
	}
}

// final sets HeaderReported, once, as the final header is about to be
// written, to the answer for a caller that announced itself; any other
// client gets no HeaderReported, not even one the handler set (a proxy
// copying a downstream's response header).
func (w *writer) final() {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.w.Header()
	if v := w.in.Answer(w.caller); v != "" {
		h[HeaderReported] = []string{v}
	} else {
		delete(h, HeaderReported)
	}
}

func (w *writer) Header() http.Header { return w.w.Header() }

func (w *writer) WriteHeader(code int) {
	// 1xx responses (103 Early Hints) come before the final header; 101
	// Switching Protocols is final.
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		w.final()
	}
	w.w.WriteHeader(code)
}

func (w *writer) Write(b []byte) (int, error) {
	w.final()
	return w.w.Write(b)
}

func (w *writer) WriteString(s string) (int, error) {
	w.final()
	return io.WriteString(w.w, s)
}

// FlushError is what http.ResponseController.Flush calls: it fails with
// http.ErrNotSupported where the wrapped writer cannot flush.
func (w *writer) FlushError() error {
	w.final()
	return http.NewResponseController(w.w).Flush()
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.w }
