package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/sentryotel"
)

// sentryMaxEvent is Sentry's limit on an event's size: 1 MiB.
const sentryMaxEvent = 1 << 20

// captured returns an event as a real sentry-go client captures it: a chain
// of wrapped errors, each with its stack trace.
func captured() *sentry.Event {
	rec := &recorder{}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://public@127.0.0.1/1", Transport: rec})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	var capture func(depth int)
	capture = func(depth int) {
		if depth > 0 {
			capture(depth - 1)
			return
		}
		err := errors.New("card declined by issuer")
		err = fmt.Errorf("charge: %w", err)
		err = fmt.Errorf("payment service: %w", err)
		err = fmt.Errorf("order 123: %w", err)
		hub.CaptureException(err)
	}
	capture(8)
	return rec.last
}

type recorder struct{ last *sentry.Event }

func (r *recorder) Flush(time.Duration) bool              { return true }
func (r *recorder) FlushWithContext(context.Context) bool { return true }
func (r *recorder) Configure(sentry.ClientOptions)        {}
func (r *recorder) SendEvent(e *sentry.Event)             { r.last = e }
func (r *recorder) Close()                                {}

// jsonSize is the size of ev as the inner transport would encode it.
func jsonSize(ev *sentry.Event) int {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return len(b)
}

// grow returns a copy of tpl whose JSON encoding is about size bytes, grown
// the way real events are big: stack frames with five lines of source
// context each side and their variables (half of the growth), up to 100
// breadcrumbs with messages and data (a quarter), and the rest in the
// request's body and an "extra" context. An event already as big as size is
// returned as it is.
func grow(tpl *sentry.Event, size int) *sentry.Event {
	ev := clone(tpl, "", "", "", "", "")
	ev.EventID, ev.Tags, ev.Contexts = tpl.EventID, tpl.Tags, maps.Clone(tpl.Contexts)
	ev.Exception[len(ev.Exception)-1].Type = tpl.Exception[len(tpl.Exception)-1].Type
	more := size - jsonSize(ev)
	if more <= 0 {
		return ev
	}

	// Frames: every captured frame gets its context and vars, then the
	// stacks deepen (middleware, recursion) up to maxFrames each, and the
	// wrapped errors that have no stack get one, as errors wrapped by
	// github.com/pkg/errors do.
	const maxFrames = 100 // sentry-go's NewStacktrace takes 100 callers at most
	frameBudget := more / 2
	last := ev.Exception[len(ev.Exception)-1].Stacktrace
	if last == nil || len(last.Frames) == 0 {
		last = &sentry.Stacktrace{Frames: []sentry.Frame{{Function: "main.handle", Module: "main", Filename: "main.go", AbsPath: "/src/shop/main.go", InApp: true}}}
	}
	src := slices.Clone(last.Frames)
	withContext := func(f sentry.Frame, k int) sentry.Frame {
		if f.ContextLine == "" || k >= len(src) { // a captured frame keeps its own
			f.Lineno = 40 + 7*k
			f.PreContext, f.ContextLine, f.PostContext = make([]string, 5), sourceLine(f.Lineno), make([]string, 5)
			for j := range 5 {
				f.PreContext[j] = sourceLine(f.Lineno - 5 + j)
				f.PostContext[j] = sourceLine(f.Lineno + 1 + j)
			}
		}
		f.Vars = map[string]any{
			"ctx":   "context.Background.WithValue(trace.SpanContext).WithCancel",
			"order": fmt.Sprintf("main.Order{ID: %d, Customer: \"c-%06d\", Amount: %d, Currency: \"EUR\", Items: 3}", 100+k, k, 1999+k),
			"err":   "charge: card declined by issuer",
			"retry": strconv.Itoa(k % 3),
		}
		return f
	}
	spent := 0
	for i := range ev.Exception {
		if st := ev.Exception[i].Stacktrace; st != nil {
			for j := range st.Frames {
				before := frameSize(st.Frames[j])
				st.Frames[j] = withContext(st.Frames[j], j)
				spent += frameSize(st.Frames[j]) - before
			}
		}
	}
	for k, full := 0, 0; spent < frameBudget && full < len(ev.Exception); k++ {
		e := &ev.Exception[len(ev.Exception)-1-k%len(ev.Exception)] // the innermost stack first
		if e.Stacktrace == nil {
			e.Stacktrace = &sentry.Stacktrace{}
		}
		st := e.Stacktrace
		if len(st.Frames) >= maxFrames {
			full++
			continue
		}
		f := withContext(src[len(st.Frames)%len(src)], len(st.Frames))
		st.Frames = append(st.Frames, f)
		spent += frameSize(f)
	}

	// Breadcrumbs: sentry-go keeps the last 100 (its MaxBreadcrumbs).
	crumbBudget := more / 4
	crumbs := min(100, max(1, crumbBudget/400))
	each := crumbBudget / crumbs
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for k := range crumbs {
		b := &sentry.Breadcrumb{Level: sentry.LevelInfo, Timestamp: start.Add(time.Duration(k) * time.Millisecond)}
		switch k % 3 {
		case 0:
			b.Type, b.Category = "http", "http.client"
			b.Data = map[string]any{"method": "GET", "status_code": "200",
				"url": "https://inventory.internal/v2/items?" + filler(max(0, each-220), k)}
		case 1:
			b.Type, b.Category = "query", "db.sql"
			b.Message = "SELECT id, sku, qty, price FROM order_items WHERE order_id = $1 AND sku IN (" + filler(max(0, each-200), k) + ")"
			b.Data = map[string]any{"db.system": "postgresql", "rows": strconv.Itoa(k)}
		default:
			b.Type, b.Category = "default", "log"
			b.Message = "reserving stock for order " + strconv.Itoa(k) + ": " + filler(max(0, each-150), k)
		}
		ev.Breadcrumbs = append(ev.Breadcrumbs, b)
	}

	// The rest: the request's body and an "extra" context, then the body
	// trimmed to land on size.
	rest := max(0, size-jsonSize(ev))
	extra := rest * 3 / 10
	ev.Contexts["extra"] = sentry.Context{
		"cart":     filler(extra/2, 1),
		"customer": filler(extra/2, 2),
	}
	ev.Request = &sentry.Request{
		URL:    "https://shop.example/api/orders/123/checkout",
		Method: "POST",
		Headers: map[string]string{
			"Content-Type": "application/json", "User-Agent": "shop-web/4.2",
			"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
	}
	body := jsonBody(rest)
	for range 8 {
		d := size - jsonSize(ev)
		if d == 0 || d > 0 && len(ev.Request.Data) == len(body) || d < 0 && ev.Request.Data == "" {
			break
		}
		ev.Request.Data = body[:max(0, min(len(body), len(ev.Request.Data)+d))]
	}
	for jsonSize(ev) > size && ev.Request.Data != "" { // a cut quote may leave a byte over
		ev.Request.Data = ev.Request.Data[:len(ev.Request.Data)-1]
	}
	return ev
}

func frameSize(f sentry.Frame) int {
	b, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	return len(b)
}

// sourceLine is line n of a made-up Go source file, about 60 bytes.
func sourceLine(n int) string {
	switch n % 5 {
	case 0:
		return fmt.Sprintf("\tif err := s.charge(ctx, order.ID, amount%d); err != nil {", n)
	case 1:
		return fmt.Sprintf("\t\treturn fmt.Errorf(\"charge order %%d: %%w\", order.ID, err) // %d", n)
	case 2:
		return "\t}"
	case 3:
		return fmt.Sprintf("\tspan.SetAttributes(attribute.Int(\"order.items\", len(order.Items%d)))", n)
	default:
		return fmt.Sprintf("\tlog.InfoContext(ctx, \"charged\", \"order\", order.ID, \"step\", %d)", n)
	}
}

// filler is n bytes of text that JSON encodes as n bytes.
func filler(n, seed int) string {
	n = max(0, n)
	var b strings.Builder
	b.Grow(n + 32)
	for i := seed; b.Len() < n; i++ {
		fmt.Fprintf(&b, "sku-%06d,", i*7919%1_000_000)
	}
	return b.String()[:n]
}

// jsonBody is a request body of at least n bytes: a JSON cart.
func jsonBody(n int) string {
	var b strings.Builder
	b.Grow(n + 128)
	b.WriteString(`{"customer":"c-000123","items":[`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"sku":"sku-%06d","qty":%d,"price":%d},`, i*7919%1_000_000, 1+i%4, 199+i)
	}
	b.WriteString(`{}]}`)
	return b.String()
}

// ownStrings makes clone copy the strings of frames, breadcrumbs, the
// request and maps too. It is set with -event-size, so that every big event
// holds its own heap as a real capture does. Without it the events share the
// capture's strings, as they always did: the default storms then send as
// fast as before, and the storms of decisions falling behind depend on that
// rate (copying the frames' context lines halves it).
var ownStrings bool

// clone copies tpl as deep as a capture would have built it: the event, its
// maps, its exceptions with their frames, and what grow added (vars,
// breadcrumbs, the request and the extra context); down to the strings with
// ownStrings.
func clone(tpl *sentry.Event, traceID, spanID, parentID, service, typ string) *sentry.Event {
	ev := *tpl
	ev.EventID = sentry.EventID(fmt.Sprintf("%032x", rand.Uint64()))
	ev.Timestamp = time.Now()
	ev.Tags = map[string]string{
		sentryotel.TagTraceID: traceID, sentryotel.TagSpanID: spanID, sentryotel.TagServiceName: service,
	}
	tc := sentry.Context{"trace_id": traceID, "span_id": spanID}
	if parentID != "" {
		tc["parent_span_id"] = parentID
	}
	ev.Contexts = map[string]sentry.Context{"trace": tc}
	for k, v := range tpl.Contexts {
		if k != "trace" {
			ev.Contexts[k] = cloneMap(v)
		}
	}
	ev.Modules = maps.Clone(tpl.Modules)

	ev.Exception = slices.Clone(tpl.Exception)
	for i := range ev.Exception {
		if ev.Exception[i].Stacktrace == nil {
			continue
		}
		st := *ev.Exception[i].Stacktrace
		st.Frames = slices.Clone(st.Frames)
		for j := range st.Frames {
			f := &st.Frames[j]
			f.PreContext = cloneStrings(f.PreContext)
			f.ContextLine = cloneString(f.ContextLine)
			f.PostContext = cloneStrings(f.PostContext)
			f.Vars = cloneMap(f.Vars)
		}
		ev.Exception[i].Stacktrace = &st
	}
	ev.Exception[len(ev.Exception)-1].Type = typ

	if tpl.Breadcrumbs != nil {
		ev.Breadcrumbs = make([]*sentry.Breadcrumb, len(tpl.Breadcrumbs))
		for i, b := range tpl.Breadcrumbs {
			c := *b
			c.Message = cloneString(b.Message)
			c.Data = cloneMap(b.Data)
			ev.Breadcrumbs[i] = &c
		}
	}
	if tpl.Request != nil {
		r := *tpl.Request
		r.Data = cloneString(r.Data)
		r.Headers = maps.Clone(r.Headers)
		ev.Request = &r
	}
	return &ev
}

func cloneStrings(s []string) []string {
	if s == nil || !ownStrings {
		return nil
	}
	c := make([]string, len(s))
	for i, v := range s {
		c[i] = cloneString(v)
	}
	return c
}

func cloneString(s string) string {
	if !ownStrings {
		return s
	}
	return strings.Clone(s)
}

// cloneMap copies m, and its string values with ownStrings.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			v = cloneString(s)
		}
		c[k] = v
	}
	return c
}

// eventSize measures the heap one clone holds, from as many clones as fit
// in about 64 MB of JSON (at least 16, at most 2000).
func eventSize(tpl *sentry.Event, jsonBytes int) uint64 {
	n := min(2000, max(16, 64<<20/max(1, jsonBytes)))
	keep := make([]*sentry.Event, n)
	before := heapAlloc()
	for i := range keep {
		keep[i] = clone(tpl, fmt.Sprintf("%032x", i+1), "00000000000000c3", "00000000000000b2", "payment", "*main.PaymentDeclined")
	}
	after := heapAlloc()
	runtime.KeepAlive(keep)
	return (after - before) / uint64(n)
}

// parseBytes reads a size in bytes: a plain number, or one with a suffix,
// KB, MB and GB (powers of 1000) or KiB, MiB and GiB (powers of 1024), in
// any case.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KB, MB, KiB, MiB or GiB", s)
	}
	return int64(v * float64(mult)), nil
}
