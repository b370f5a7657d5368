package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tracedup/tracedup/internal/envelope"
)

var _ http.Handler = (*Handler)(nil)

// Handler speaks Sentry's ingest protocol as Sentry's Relay does: the
// envelope, store and OTLP traces endpoints, CORS preflight, and /healthz.
// Error events go to its Sink; everything else, and the span items it
// learns from, goes to its Forwarder at once.
type Handler struct {
	cfg   config
	sink  Sink
	up    Forwarder
	stats counters
	// inFlight is what the bodies of requests in flight hold (see
	// WithMaxInFlight).
	inFlight atomic.Int64
}

// NewHandler returns a handler that gives error events to sink, the spans
// it reads to sink.Spans, and forwards every other item through up.
func NewHandler(sink Sink, up Forwarder, options ...Option) *Handler {
	return &Handler{cfg: newConfig(options), sink: sink, up: up}
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats { return h.stats.snapshot() }

// endpoint is what a request path addresses.
type endpoint int

const (
	endpointNone endpoint = iota
	endpointEnvelope
	endpointStore
	endpointOTLPTraces
)

// route returns the endpoint and project of an API path,
// /api/{project}/envelope/, /api/{project}/store/ or
// /api/{project}/integration/otlp/v1/traces, with or without the trailing
// slash, as Relay's normalize_path accepts them.
func route(path string) (endpoint, string) {
	rest, ok := strings.CutPrefix(path, "/api/")
	if !ok {
		return endpointNone, ""
	}
	project, rest, ok := strings.Cut(rest, "/")
	if !ok || !validProject(project) {
		return endpointNone, ""
	}
	switch strings.TrimSuffix(rest, "/") {
	case "envelope":
		return endpointEnvelope, project
	case "store":
		return endpointStore, project
	case "integration/otlp/v1/traces":
		return endpointOTLPTraces, project
	}
	return endpointNone, ""
}

// validProject accepts the project ids Sentry issues (digits) and, for
// self-hosted setups and tests, short ids of letters, digits, - and _.
func validProject(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, c := range []byte(p) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// httpError is a refusal: its status, the counter's reason and a message
// for the SDK.
type httpError struct {
	status     int
	reason     string
	msg        string
	retryAfter time.Duration
	categories []string
}

func reject(status int, reason, format string, args ...any) *httpError {
	return &httpError{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one request; it never panics on what an SDK sends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.stats.add(func(s *Stats) { s.Requests++ })
	if r.URL.Path == "/healthz" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.fail(w, reject(http.StatusMethodNotAllowed, reasonMethod, "method %s, want GET", r.Method))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	ep, project := route(r.URL.Path)
	if ep == endpointNone {
		h.fail(w, reject(http.StatusNotFound, reasonNotFound, "no such endpoint: %s", r.URL.Path))
		return
	}
	if r.Header.Get("Origin") != "" {
		// Browser SDKs post from other origins (Relay's cors middleware).
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "x-sentry-error, x-sentry-rate-limits, retry-after")
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		preflight(w)
		return
	default:
		h.fail(w, reject(http.StatusMethodNotAllowed, reasonMethod, "method %s, want POST", r.Method))
		return
	}
	req := &Request{Project: project, Auth: requestAuth(r), UserAgent: r.UserAgent(), Received: h.cfg.now()}
	var held int64 // what this request's body holds of the budget in flight
	defer func() { h.inFlight.Add(-held) }()
	var herr *httpError
	switch ep {
	case endpointEnvelope:
		herr = h.envelope(w, r, req, &held)
	case endpointStore:
		herr = h.store(w, r, req, &held)
	case endpointOTLPTraces:
		herr = h.otlpTraces(w, r, req, &held)
	}
	if herr != nil {
		h.fail(w, herr)
	}
}

// preflight answers a CORS preflight as Relay's cors middleware does.
func preflight(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Allow-Methods", "POST")
	hd.Set("Access-Control-Allow-Headers", "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, authentication, authorization, content-encoding, transfer-encoding")
	hd.Set("Access-Control-Max-Age", "3600")
	hd.Del("Access-Control-Expose-Headers")
	w.WriteHeader(http.StatusOK)
}

// fail answers herr as Relay does: a JSON {"detail": ...} body, the message
// in X-Sentry-Error too, and Retry-After and X-Sentry-Rate-Limits on 429.
func (h *Handler) fail(w http.ResponseWriter, herr *httpError) {
	h.stats.add(func(s *Stats) {
		if s.Rejected == nil {
			s.Rejected = map[string]uint64{}
		}
		s.Rejected[herr.reason]++
	})
	hd := w.Header()
	hd.Set("X-Sentry-Error", herr.msg)
	switch herr.status {
	case http.StatusMethodNotAllowed:
		hd.Set("Allow", "POST, OPTIONS")
	case http.StatusTooManyRequests:
		secs := strconv.FormatInt(int64(math.Ceil(max(herr.retryAfter, time.Second).Seconds())), 10)
		hd.Set("Retry-After", secs)
		hd.Set("X-Sentry-Rate-Limits", secs+":"+strings.Join(herr.categories, ";")+":key")
	}
	body, _ := json.Marshal(struct {
		Detail string `json:"detail"`
	}{herr.msg})
	hd.Set("Content-Type", "application/json")
	w.WriteHeader(herr.status)
	_, _ = w.Write(body)
}

// succeed answers 200 with {"id": id}, or {} when id is "".
func succeed(w http.ResponseWriter, id string) {
	body, _ := json.Marshal(struct {
		ID string `json:"id,omitempty"`
	}{id})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// requestAuth returns the auth a request carries: the X-Sentry-Auth header
// (or an Authorization header in the same "Sentry ..." form), else the
// sentry_key query parameter.
func requestAuth(r *http.Request) Auth {
	for _, name := range []string{"X-Sentry-Auth", "Authorization"} {
		v := r.Header.Get(name)
		if key := authKey(v); key != "" {
			return Auth{Key: key, Header: v}
		}
	}
	if key := r.URL.Query().Get("sentry_key"); key != "" {
		return Auth{Key: key, Query: r.URL.RawQuery}
	}
	return Auth{}
}

// authKey returns the sentry_key of an X-Sentry-Auth value,
// "Sentry sentry_key=KEY, sentry_version=7, ...".
func authKey(v string) string {
	v = strings.TrimSpace(v)
	if len(v) < 7 || !strings.EqualFold(v[:7], "sentry ") {
		return ""
	}
	for field := range strings.SplitSeq(v[7:], ",") {
		if key, ok := strings.CutPrefix(strings.TrimSpace(field), "sentry_key="); ok {
			return strings.TrimSpace(key)
		}
	}
	return ""
}

// dsnKey returns the public key of the dsn in an envelope header, which
// tunnels rely on; "" when there is none.
func dsnKey(header []byte) string {
	var h struct {
		DSN string `json:"dsn"`
	}
	if json.Unmarshal(header, &h) != nil || h.DSN == "" {
		return ""
	}
	u, err := url.Parse(h.DSN)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

func unauthorized() *httpError {
	return reject(http.StatusUnauthorized, reasonUnauthorized,
		"missing authorization information: no sentry_key in X-Sentry-Auth, the query or the envelope's dsn")
}

// busy checks, before the body is read, whether the forwarder wants every
// category to wait (a limit on all of them, or its queue filling).
func (h *Handler) busy() *httpError {
	if d := h.up.RetryAfter(nil); d > 0 {
		return h.limited(d, nil)
	}
	return nil
}

func (h *Handler) limited(d time.Duration, categories []string) *httpError {
	herr := reject(http.StatusTooManyRequests, reasonRateLimited, "rate limited for %s", d.Round(time.Second))
	herr.retryAfter, herr.categories = d, categories
	return herr
}

// envelope handles POST /api/{project}/envelope/.
func (h *Handler) envelope(w http.ResponseWriter, r *http.Request, req *Request, held *int64) *httpError {
	if herr := h.busy(); herr != nil {
		return herr
	}
	body, herr := h.readBody(w, r, h.cfg.limits.MaxEnvelopeSize, held)
	if herr != nil {
		return herr
	}
	env, err := envelope.Parse(body)
	if err != nil {
		return reject(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	if req.Auth.Key == "" {
		req.Auth.Key = dsnKey(env.Header)
	}
	if req.Auth.Key == "" {
		return unauthorized()
	}
	return h.process(w, req, body, env)
}

// store handles the legacy POST /api/{project}/store/: one event as JSON.
func (h *Handler) store(w http.ResponseWriter, r *http.Request, req *Request, held *int64) *httpError {
	if req.Auth.Key == "" {
		return unauthorized()
	}
	if herr := h.busy(); herr != nil {
		return herr
	}
	body, herr := h.readBody(w, r, h.cfg.limits.MaxEventSize, held)
	if herr != nil {
		return herr
	}
	if body, herr = decodeStoreBody(body, h.cfg.limits.MaxEventSize); herr != nil {
		return herr
	}
	var ev struct {
		EventID string `json:"event_id"`
		Type    string `json:"type"`
	}
	if err := envelope.DecodeObject(body, &ev); err != nil {
		return reject(http.StatusBadRequest, reasonMalformed, "store body is not a JSON event: %v", err)
	}
	id := strings.ReplaceAll(strings.ToLower(ev.EventID), "-", "")
	if len(id) != 32 {
		id = newEventID()
	}
	itemType := "event"
	if ev.Type == "transaction" {
		itemType = "transaction"
	}
	header, _ := json.Marshal(struct {
		EventID string `json:"event_id"`
	}{id})
	itemHeader, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Length int    `json:"length"`
	}{itemType, len(body)})
	env := envelope.Envelope{
		Header:  header,
		EventID: id,
		Items:   []envelope.Item{{Type: itemType, Header: itemHeader, Payload: body}},
	}
	return h.process(w, req, nil, env)
}

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// eventLike are the item types Relay counts against max_event_size.
var eventLike = map[string]bool{
	"event": true, "transaction": true, "security": true, "raw_security": true, "nel": true,
	"replay_event": true, "user_report_v2": true, "form_data": true, "feedback": true,
}

// checkSizes applies Relay's per-item limits (relay-server's
// utils/sizes.rs).
func (h *Handler) checkSizes(env envelope.Envelope) *httpError {
	l := h.cfg.limits
	var events, attachments, clientReports int64
	sessions := 0
	for _, it := range env.Items {
		n := int64(len(it.Payload))
		switch {
		case eventLike[it.Type]:
			events += n
		case it.Type == "attachment":
			if n > l.MaxAttachmentSize {
				return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "attachment of %d bytes is over the limit of %d", n, l.MaxAttachmentSize)
			}
			attachments += n
		case it.Type == "session" || it.Type == "sessions":
			sessions++
		case it.Type == "client_report":
			clientReports += n
		case it.Type == "profile":
			if n > l.MaxProfileSize {
				return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "profile of %d bytes is over the limit of %d", n, l.MaxProfileSize)
			}
		}
	}
	switch {
	case events > l.MaxEventSize:
		return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "event of %d bytes is over the limit of %d", events, l.MaxEventSize)
	case attachments > l.MaxAttachmentsSize:
		return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "attachments of %d bytes are over the limit of %d", attachments, l.MaxAttachmentsSize)
	case clientReports > l.MaxClientReportsSize:
		return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "client reports of %d bytes are over the limit of %d", clientReports, l.MaxClientReportsSize)
	case sessions > l.MaxSessionCount:
		return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "%d sessions are over the limit of %d", sessions, l.MaxSessionCount)
	}
	return nil
}

// process hands an envelope's events to the sink, tells it the spans of
// its transactions and span items, and forwards every other item at once,
// together, under the original header: body itself when it holds no event
// (nil when it must be encoded anew).
func (h *Handler) process(w http.ResponseWriter, req *Request, body []byte, env envelope.Envelope) *httpError {
	if herr := h.checkSizes(env); herr != nil {
		return herr
	}
	var categories []string
	for _, it := range env.Items {
		if c := Category(it.Type); !slices.Contains(categories, c) {
			categories = append(categories, c)
		}
	}
	if d := h.up.RetryAfter(categories); d > 0 {
		return h.limited(d, categories)
	}
	req.EnvelopeHeader = bytes.Clone(env.Header)

	var events, rest []envelope.Item
	for _, it := range env.Items {
		if it.Type == "event" {
			events = append(events, it)
		} else {
			rest = append(rest, it)
		}
	}
	for _, it := range events {
		// A copy, so that the sink does not hold the rest of the body.
		item := envelope.Item{Type: it.Type, Header: bytes.Clone(it.Header), Payload: bytes.Clone(it.Payload)}
		if err := h.sink.Event(req, item); err != nil {
			herr := reject(http.StatusTooManyRequests, reasonSinkFull, "relay is full: %v", err)
			if !errors.Is(err, ErrFull) {
				herr.status, herr.reason = http.StatusInternalServerError, "sink_error"
			}
			herr.retryAfter, herr.categories = h.cfg.retryAfter, []string{CategoryError}
			return herr
		}
		h.stats.add(func(s *Stats) { s.Events++ })
	}

	spans, spanErrors := h.spans(rest)
	if len(spans) > 0 {
		h.sink.Spans(req, spans)
	}

	forwarded := true
	if len(rest) > 0 {
		if len(events) > 0 || body == nil {
			body = envelope.Append(make([]byte, 0, len(env.Header)+forwardSize(rest)), env.Header, rest...)
		}
		var restCategories []string
		for _, it := range rest {
			if c := Category(it.Type); !slices.Contains(restCategories, c) {
				restCategories = append(restCategories, c)
			}
		}
		forwarded = h.up.Send(req, body, restCategories)
		if !forwarded && len(events) == 0 {
			herr := reject(http.StatusTooManyRequests, reasonForwardFull, "relay could not forward the envelope")
			herr.retryAfter = max(h.up.RetryAfter(restCategories), h.cfg.retryAfter)
			herr.categories = restCategories
			return herr
		}
	}
	h.stats.add(func(s *Stats) {
		s.Envelopes++
		if s.Items == nil {
			s.Items = map[string]uint64{}
		}
		for _, it := range env.Items {
			t := it.Type
			if _, known := itemCategories[t]; !known {
				t = otherItemType
			}
			s.Items[t]++
		}
		s.Spans += uint64(len(spans))
		s.SpanErrors += uint64(spanErrors)
		if len(rest) > 0 && forwarded {
			s.Forwarded++
		}
	})
	succeed(w, env.EventID)
	return nil
}

func forwardSize(items []envelope.Item) int {
	n := 0
	for _, it := range items {
		n += len(it.Header) + len(it.Payload) + 2
	}
	return n
}

// spans reads the spans of transaction and span items; it returns how many
// items it could not read.
func (h *Handler) spans(items []envelope.Item) ([]Span, int) {
	var spans []Span
	errs := 0
	for _, it := range items {
		var got []Span
		var err error
		switch it.Type {
		case "transaction":
			got, err = transactionSpans(it.Payload)
		case "span":
			got, err = spanItemSpans(it.Payload)
		default:
			continue
		}
		if err != nil {
			errs++
			continue
		}
		spans = append(spans, got...)
	}
	return spans, errs
}

// otlpTraces handles POST /api/{project}/integration/otlp/v1/traces.
func (h *Handler) otlpTraces(w http.ResponseWriter, r *http.Request, req *Request, held *int64) *httpError {
	if req.Auth.Key == "" {
		return unauthorized()
	}
	contentType := r.Header.Get("Content-Type")
	format := otlpFormat(contentType)
	if format == "" {
		return reject(http.StatusUnsupportedMediaType, reasonContentType, "Content-Type %q, want application/x-protobuf or application/json", contentType)
	}
	categories := []string{CategorySpan}
	if d := h.up.RetryAfter(categories); d > 0 {
		return h.limited(d, categories)
	}
	body, herr := h.readBody(w, r, h.cfg.limits.MaxEnvelopeSize, held)
	if herr != nil {
		return herr
	}
	spans, err := otlpSpans(body, format)
	if err != nil {
		return reject(http.StatusBadRequest, reasonMalformed, "OTLP traces: %v", err)
	}
	if len(spans) > 0 {
		h.sink.Spans(req, spans)
	}
	if !h.up.SendOTLP(req, body, contentType, "") {
		herr := reject(http.StatusTooManyRequests, reasonForwardFull, "relay could not forward the traces")
		herr.retryAfter = max(h.up.RetryAfter(categories), h.cfg.retryAfter)
		herr.categories = categories
		return herr
	}
	h.stats.add(func(s *Stats) {
		s.OTLPRequests++
		s.Spans += uint64(len(spans))
		s.Forwarded++
	})
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(otlpResponse(format))
	return nil
}
