package fakesentry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
)

const (
	// DefaultPublicKey is the DSN public key (sentry_key) the server accepts
	// unless [WithPublicKey] says otherwise.
	DefaultPublicKey = "public"
	// DefaultProject is the project id in the DSN that [Server.DSN] returns.
	DefaultProject = "1"
	// DefaultMaxBodySize bounds a request body, both as sent and after
	// decompression, as Relay bounds compressed envelopes.
	DefaultMaxBodySize = 20 << 20
)

// ErrClosed is returned by [Server.WaitFor] once the server is closed.
var ErrClosed = errors.New("fakesentry: server closed")

// Option configures a [Server].
type Option interface{ apply(*config) }

type config struct {
	publicKey   string
	maxBodySize int64
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithPublicKey sets the public key that requests must carry as sentry_key;
// "" is ignored.
func WithPublicKey(key string) Option {
	return optionFunc(func(c *config) {
		if key != "" {
			c.publicKey = key
		}
	})
}

// WithMaxBodySize bounds a request body, as sent and after decompression;
// larger requests get 413. n <= 0 is ignored.
func WithMaxBodySize(n int64) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxBodySize = n
		}
	})
}

// Event is one error event the server accepted.
//
// Values returned by the server share Event, Raw, EnvelopeHeader and Header
// with the server's own copy: treat them as read-only.
type Event struct {
	// Project is the project id from the request path /api/<project>/envelope/.
	Project string
	// Event is Raw decoded with json.Unmarshal into sentry-go's own type.
	Event *sentry.Event
	// Raw is the event item payload exactly as sent.
	Raw json.RawMessage
	// EnvelopeHeader is the header line of the envelope that carried the
	// event, as sent (event_id, sent_at, dsn, sdk, trace).
	EnvelopeHeader json.RawMessage
	// Header holds the HTTP request headers (X-Sentry-Auth, User-Agent...).
	Header http.Header
	// Received is when the server accepted the envelope.
	Received time.Time
}

// Transaction is one transaction the server accepted. Only a few fields are
// decoded: sentry.Event cannot decode a transaction's spans, whose status
// travels as a string.
type Transaction struct {
	Project     string
	EventID     string
	Transaction string // the transaction name
	TraceID     string // contexts.trace.trace_id
	SpanID      string // contexts.trace.span_id
	Raw         json.RawMessage
	Received    time.Time
}

// Log is one structured log the server accepted, from an envelope's log
// item (sentry-go's Logs).
type Log struct {
	Project string
	TraceID string
	SpanID  string
	Level   string
	Body    string
	// Attributes are the log's attributes by name, their values as JSON
	// decodes them.
	Attributes map[string]any
	Received   time.Time
}

// Stats counts what the server saw since it started or was last [Server.Reset].
type Stats struct {
	Requests     uint64 // every HTTP request, accepted or not
	Envelopes    uint64 // envelopes accepted (200)
	Events       uint64 // error events accepted
	Transactions uint64 // transactions accepted
	// Items counts accepted envelope items by type, events and transactions
	// included (client_report, attachment, log...).
	Items map[string]uint64
	// Rejected counts requests answered with a 4xx other than 429: wrong
	// path or method, bad sentry_key, bad encoding, malformed envelope or
	// event, oversized body.
	Rejected uint64
	// RateLimited counts requests answered with 429 by [Server.SetRateLimit].
	RateLimited uint64
	// LastRejection says why the last rejected request was rejected.
	LastRejection string
}

// Server is a fake Sentry ingestion endpoint on a loopback port. Its methods
// are safe for concurrent use.
type Server struct {
	cfg       config
	addr      string
	srv       *http.Server
	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error
	// conns counts live connections. It is only added to from the Serve
	// goroutine, so waiting after Serve returns is race-free.
	conns sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	done         chan struct{} // closed by Close
	changed      chan struct{} // closed and replaced whenever events change
	events       []Event
	transactions []Transaction
	logs         []Log
	stats        Stats
	rateLimit    time.Duration
}

// New starts a server on 127.0.0.1 on a free port. Call [Server.Close] to
// stop it.
func New(options ...Option) (*Server, error) {
	cfg := config{publicKey: DefaultPublicKey, maxBodySize: DefaultMaxBodySize}
	for _, o := range options {
		if o != nil {
			o.apply(&cfg)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakesentry: listen: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		addr:      ln.Addr().String(),
		serveDone: make(chan struct{}),
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
		stats:     Stats{Items: map[string]uint64{}},
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ConnState:         s.connState,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // always http.ErrServerClosed or a listener error after Close
	}()
	return s, nil
}

// URL returns the server's base URL, "http://127.0.0.1:<port>".
func (s *Server) URL() string { return "http://" + s.addr }

// DSN returns a DSN for project [DefaultProject] that points sentry-go at the
// server, such as "http://public@127.0.0.1:34567/1".
func (s *Server) DSN() string { return s.ProjectDSN(DefaultProject) }

// ProjectDSN returns a DSN for the given project id (non-empty, without "/")
// that points sentry-go at the server; events sent to it are recorded with
// that Project.
func (s *Server) ProjectDSN(project string) string {
	return "http://" + s.cfg.publicKey + "@" + s.addr + "/" + project
}

// Close stops the server: it closes the listener and every connection, then
// waits for every goroutine of the server, in-flight requests included, to
// finish. Blocked [Server.WaitFor] calls return [ErrClosed]. Recorded events
// stay readable. Close is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.mu.Unlock()
		s.closeErr = s.srv.Close()
		<-s.serveDone
		s.conns.Wait()
	})
	return s.closeErr
}

// Events returns a copy of the error events accepted so far, in arrival order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Transactions returns a copy of the transactions accepted so far, in
// arrival order.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transactions)
}

// Logs returns a copy of the structured logs accepted so far, in arrival
// order.
func (s *Server) Logs() []Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logs)
}

// Len returns the number of error events accepted so far.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Items = maps.Clone(s.stats.Items)
	return st
}

// WaitFor blocks until at least n error events have been accepted, then
// returns a copy of all of them (len >= n). It wakes on each arrival rather
// than polling. If ctx ends first it returns the events so far with
// ctx.Err(); if the server is closed first, with [ErrClosed].
func (s *Server) WaitFor(ctx context.Context, n int) ([]Event, error) {
	for {
		s.mu.Lock()
		if len(s.events) >= n {
			events := slices.Clone(s.events)
			s.mu.Unlock()
			return events, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Events(), ctx.Err()
		case <-s.done:
			return s.Events(), ErrClosed
		}
	}
}

// Reset forgets every recorded event and transaction and zeroes [Stats], so a
// test can start a new phase. It does not change [Server.SetRateLimit].
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = nil
	s.transactions = nil
	s.logs = nil
	s.stats = Stats{Items: map[string]uint64{}}
	s.signalLocked()
}

// SetRateLimit makes the server answer every envelope with 429, as Sentry
// does when a quota is exhausted, with "Retry-After: <secs>" and
// "X-Sentry-Rate-Limits: <secs>::organization" (all categories), where secs
// is d rounded up to whole seconds. sentry-go then drops events on the client
// side until that time has passed. d <= 0 switches the simulation off.
func (s *Server) SetRateLimit(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = max(d, 0)
}

// signalLocked wakes every WaitFor; s.mu must be held.
func (s *Server) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// httpError is a rejection: the status to answer and why.
type httpError struct {
	status int
	reason string
}

func (e *httpError) Error() string { return e.reason }

func reject(status int, format string, args ...any) *httpError {
	return &httpError{status: status, reason: fmt.Sprintf(format, args...)}
}

// connState tracks connections so that Close can wait for their goroutines,
// which net/http's own Close does not do.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.conns.Add(1)
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			// Accepted while Close ran: http.Server.Close may have missed it.
			_ = c.Close()
		}
	case http.StateHijacked, http.StateClosed:
		s.conns.Done()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	rateLimit := s.rateLimit
	s.mu.Unlock()

	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/") && strings.HasSuffix(r.URL.Path, "/integration/otlp/v1/traces") {
		// OTLP traces, as sentry-go now recommends sending OTel spans:
		// accepted and counted, not decoded.
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.stats.Items["otlp_traces"]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	}
	accepted, herr := s.accept(w, r, rateLimit)
	if herr != nil {
		s.mu.Lock()
		if herr.status == http.StatusTooManyRequests {
			s.stats.RateLimited++
		} else {
			s.stats.Rejected++
			s.stats.LastRejection = fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.Path, herr.status, herr.reason)
		}
		s.mu.Unlock()
		if herr.status == http.StatusTooManyRequests {
			secs := strconv.FormatInt(int64((rateLimit+time.Second-1)/time.Second), 10)
			w.Header().Set("Retry-After", secs)
			w.Header().Set("X-Sentry-Rate-Limits", secs+"::organization")
		}
		if herr.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		http.Error(w, herr.reason, herr.status)
		return
	}

	s.mu.Lock()
	s.events = append(s.events, accepted.events...)
	s.transactions = append(s.transactions, accepted.transactions...)
	s.logs = append(s.logs, accepted.logs...)
	s.stats.Envelopes++
	s.stats.Events += uint64(len(accepted.events))
	s.stats.Transactions += uint64(len(accepted.transactions))
	for _, typ := range accepted.itemTypes {
		s.stats.Items[typ]++
	}
	s.signalLocked()
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(struct {
		ID string `json:"id,omitempty"`
	}{accepted.id})
	_, _ = w.Write(body)
}

// accepted is what one good envelope adds to the server's records.
type accepted struct {
	id           string // answered as {"id": ...}
	events       []Event
	transactions []Transaction
	logs         []Log
	itemTypes    []string
}

// accept checks and decodes one request. It returns a 429 when rateLimit > 0
// and the request is otherwise addressed correctly.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, rateLimit time.Duration) (accepted, *httpError) {
	project, ok := envelopeProject(r.URL.Path)
	if !ok {
		return accepted{}, reject(http.StatusNotFound, "not an envelope endpoint, want /api/<project>/envelope/")
	}
	if r.Method != http.MethodPost {
		return accepted{}, reject(http.StatusMethodNotAllowed, "method %s, want POST", r.Method)
	}
	if key := sentryKey(r); key != s.cfg.publicKey {
		return accepted{}, reject(http.StatusUnauthorized, "sentry_key %q, want %q", key, s.cfg.publicKey)
	}
	if rateLimit > 0 {
		return accepted{}, reject(http.StatusTooManyRequests, "rate limited")
	}
	body, herr := s.readBody(w, r)
	if herr != nil {
		return accepted{}, herr
	}
	a, err := decode(project, body, time.Now())
	if err != nil {
		return accepted{}, reject(http.StatusBadRequest, "%v", err)
	}
	header := r.Header.Clone()
	for i := range a.events {
		a.events[i].Header = header
	}
	return a, nil
}

// envelopeProject returns the project of an envelope endpoint path,
// /api/<project>/envelope/ (the trailing slash is optional, as in Relay).
func envelopeProject(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/api/")
	if !ok {
		return "", false
	}
	project, endpoint, ok := strings.Cut(rest, "/")
	if !ok || project == "" || (endpoint != "envelope/" && endpoint != "envelope") {
		return "", false
	}
	return project, true
}

// sentryKey returns the sentry_key of the X-Sentry-Auth header, or else of the
// query string, where browser SDKs put it.
func sentryKey(r *http.Request) string {
	auth, ok := strings.CutPrefix(r.Header.Get("X-Sentry-Auth"), "Sentry ")
	if ok {
		for field := range strings.SplitSeq(auth, ",") {
			if key, ok := strings.CutPrefix(strings.TrimSpace(field), "sentry_key="); ok {
				return key
			}
		}
	}
	return r.URL.Query().Get("sentry_key")
}

// readBody reads the request body, decompressing it according to
// Content-Encoding, within the configured size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	limit := s.cfg.maxBodySize
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError("bad gzip body", err, limit)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, reject(http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q", enc)
	}
	// The second limit catches gzip bombs: small as sent, huge inflated.
	body, err := io.ReadAll(io.LimitReader(src, limit+1))
	switch {
	case err != nil:
		return nil, bodyError("reading body", err, limit)
	case int64(len(body)) > limit:
		return nil, reject(http.StatusRequestEntityTooLarge, "body over %d bytes once decompressed", limit)
	}
	return body, nil
}

// bodyError maps an error reading the body to 413 when the body was too
// large, else to 400.
func bodyError(what string, err error, limit int64) *httpError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return reject(http.StatusRequestEntityTooLarge, "body over %d bytes", limit)
	}
	return reject(http.StatusBadRequest, "%s: %v", what, err)
}

// decode decodes an envelope body sent to project. Every event item must
// decode into a sentry.Event (in any shape Sentry accepts, see decodeEvent) and every transaction item must be a JSON
// object; otherwise the whole envelope is refused, so a test never sees half
// an envelope.
func decode(project string, body []byte, now time.Time) (accepted, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return accepted{}, err
	}
	a := accepted{id: env.EventID}
	header := json.RawMessage(bytes.Clone(env.Header))
	for i, item := range env.Items {
		a.itemTypes = append(a.itemTypes, item.Type)
		switch item.Type {
		case "event":
			raw := json.RawMessage(bytes.Clone(item.Payload))
			ev, err := decodeEvent(raw)
			if err != nil {
				return accepted{}, fmt.Errorf("item %d: event: %w", i, err)
			}
			if a.id == "" {
				a.id = string(ev.EventID)
			}
			a.events = append(a.events, Event{Project: project, Event: ev, Raw: raw, EnvelopeHeader: header, Received: now})
		case "transaction":
			raw := json.RawMessage(bytes.Clone(item.Payload))
			var tx struct {
				EventID     string `json:"event_id"`
				Transaction string `json:"transaction"`
				Contexts    struct {
					Trace struct {
						TraceID string `json:"trace_id"`
						SpanID  string `json:"span_id"`
					} `json:"trace"`
				} `json:"contexts"`
			}
			if err := decodeObject(raw, &tx); err != nil {
				return accepted{}, fmt.Errorf("item %d: transaction: %w", i, err)
			}
			if a.id == "" {
				a.id = tx.EventID
			}
			a.transactions = append(a.transactions, Transaction{
				Project: project, EventID: tx.EventID, Transaction: tx.Transaction,
				TraceID: tx.Contexts.Trace.TraceID, SpanID: tx.Contexts.Trace.SpanID,
				Raw: raw, Received: now,
			})
		case "log":
			var logs struct {
				Items []struct {
					TraceID    string `json:"trace_id"`
					SpanID     string `json:"span_id"`
					Level      string `json:"level"`
					Body       string `json:"body"`
					Attributes map[string]struct {
						Value any `json:"value"`
					} `json:"attributes"`
				} `json:"items"`
			}
			if err := decodeObject(item.Payload, &logs); err != nil {
				return accepted{}, fmt.Errorf("item %d: log: %w", i, err)
			}
			for _, l := range logs.Items {
				attrs := make(map[string]any, len(l.Attributes))
				for k, v := range l.Attributes {
					attrs[k] = v.Value
				}
				a.logs = append(a.logs, Log{Project: project, TraceID: l.TraceID, SpanID: l.SpanID,
					Level: l.Level, Body: l.Body, Attributes: attrs, Received: now})
			}
		}
	}
	return a, nil
}
