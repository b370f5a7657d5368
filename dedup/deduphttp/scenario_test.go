package deduphttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// The scenarios of the incident model: small systems of real services on
// loopback, each with its own tracer provider (and sentryotel's span
// processor), its own sentry-go client and deduplicator, otelhttp and
// deduphttp on both sides, sentryhttp recovering panics. Each scenario knows
// which errors are independent failures (origins) and asserts exactly which
// events reach Sentry.

// Error types: sentry-go names an event's exception by its Go type, and the
// deduplicator treats one service's errors of one type as repeats.
type (
	PaymentDeclined struct{}
	RefundFailed    struct{}
	StockError      struct{}
	PriceError      struct{}
	CallFailed      struct{ status int }
	AuditLost       struct{}
)

func (*PaymentDeclined) Error() string { return "card declined" }
func (*RefundFailed) Error() string    { return "refund failed" }
func (*StockError) Error() string      { return "out of stock" }
func (*PriceError) Error() string      { return "no price" }
func (e *CallFailed) Error() string    { return fmt.Sprintf("downstream answered %d", e.status) }
func (*AuditLost) Error() string       { return "audit record lost" }

// service is one service of a scenario.
type service struct {
	name     string
	tp       *sdktrace.TracerProvider
	client   *sentry.Client
	dedup    *dedup.Transport // nil for a service without tracedup
	recorder *sentrytest.Transport
	mux      *http.ServeMux
	srv      *httptest.Server
	http     *http.Client
	bg       sync.WaitGroup // the service's background work
}

// system is the services of one scenario by name.
type system map[string]*service

var w3c = propagation.TraceContext{}

// newService starts a service. Without tracedup it has the hook alone: no
// deduplicator, no deduphttp on either side.
func newService(t *testing.T, sys system, name string, tracedup bool, options ...dedup.Option) *service {
	t.Helper()
	return newServiceWith(t, sys, name, tracedup, with{}, options...)
}

// with is what a test may change of a service beside its deduplicator's
// options: its client's DSN, whose host names the Transport's fleet, and
// its Sentry, the deduplicator's inner transport, sentry(recorder) where
// sentry is not nil.
type with struct {
	dsn    string
	sentry func(*sentrytest.Transport) sentry.Transport
	// spanInside puts deduphttp outside otelhttp, as around a router whose
	// own OTel middleware starts the span inside it (otelgin in gin).
	spanInside bool
}

// newServiceDSN is newService with a DSN.
func newServiceDSN(t *testing.T, sys system, name string, tracedup bool, dsn string, options ...dedup.Option) *service {
	t.Helper()
	return newServiceWith(t, sys, name, tracedup, with{dsn: dsn}, options...)
}

// newServiceTo is newService with a Sentry of the test's own.
func newServiceTo(t *testing.T, sys system, name string, to func(*sentrytest.Transport) sentry.Transport, tracedup bool, options ...dedup.Option) *service {
	t.Helper()
	return newServiceWith(t, sys, name, tracedup, with{sentry: to}, options...)
}

func newServiceWith(t *testing.T, sys system, name string, tracedup bool, w with, options ...dedup.Option) *service {
	t.Helper()
	s := &service{name: name, recorder: sentrytest.NewTransport(), mux: http.NewServeMux()}
	s.tp = sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
	var transport sentry.Transport = s.recorder
	if w.sentry != nil {
		transport = w.sentry(s.recorder)
	}
	if tracedup {
		// An hour's window: the test decides when by flushing.
		s.dedup = dedup.NewTransport(transport, append([]dedup.Option{dedup.WithWindow(time.Hour)}, options...)...)
		transport = s.dedup
	}
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Dsn: w.dsn, Transport: transport}))
	require.NoError(t, err)
	s.client = client

	var h http.Handler = sentryhttp.New(sentryhttp.Options{}).Handle(s.mux)
	h = withHub(h, client)
	var rt http.RoundTripper = http.DefaultTransport
	traced := func(h http.Handler) http.Handler {
		return otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(w3c))
	}
	if w.spanInside {
		h = traced(h)
	}
	if tracedup {
		h = deduphttp.NewHandler(h, s.dedup)
		rt = deduphttp.NewTransport(rt, s.dedup)
	}
	if !w.spanInside {
		h = traced(h)
	}
	s.srv = httptest.NewServer(h)
	s.http = &http.Client{Transport: otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(w3c))}
	sys[name] = s
	t.Cleanup(func() {
		s.srv.Close()
		s.bg.Wait()
		client.Close()
		_ = s.tp.Shutdown(context.Background())
	})
	return s
}

func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// capture reports err as a handler would, with the request's context.
func capture(ctx context.Context, err error) { sentryotel.CaptureException(ctx, err) }

// call makes a POST to another service of the system and returns its status.
func (s *service) call(ctx context.Context, to *service, path string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to.srv.URL+path, nil)
	if err != nil {
		panic(err)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return http.StatusBadGateway
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// fail is a handler that captures err and answers status.
func fail(err error, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		capture(r.Context(), err)
		w.WriteHeader(status)
	}
}

// forward is a handler that calls path on to, and on a failure captures
// CallFailed and answers 502.
func (s *service) forward(to *service, path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if st := s.call(r.Context(), to, path); st >= 400 {
			capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		}
	}
}

// request sends one request into the system at entry, under a root span of
// the test's own, as a browser or load balancer would.
func (sys system) request(t *testing.T, entry, path string) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("client").Start(context.Background(), "request")
	defer span.End()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c))}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys[entry].srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
}

// sent waits for the services' background work, flushes every client and
// returns what reached Sentry, sorted: "service: type" for an error event,
// "service: message: text" for a message.
func (sys system) sent(t *testing.T) []string {
	t.Helper()
	var got []string
	for _, s := range sys {
		s.bg.Wait()
		require.True(t, s.client.Flush(10*time.Second), "%s: flush", s.name)
	}
	for name, s := range sys {
		for _, ev := range s.recorder.Events() {
			what := "message: " + ev.Message
			if n := len(ev.Exception); n > 0 {
				what = strings.TrimPrefix(ev.Exception[n-1].Type, "*deduphttp_test.")
			}
			got = append(got, name+": "+what)
		}
		if s.dedup != nil {
			st := s.dedup.Stats()
			assert.Equal(t, st.Received, st.Emitted+st.Suppressed+st.Pending, "%s: %+v", name, st)
		}
	}
	slices.Sort(got)
	return got
}

// scenario is one system, the requests it serves, and what must reach
// Sentry: every origin, and nothing else unless the scenario says why.
type scenario struct {
	name string
	// build starts the services and routes, and returns the entry service
	// and path.
	build func(t *testing.T, sys system) (entry, path string)
	// origins are the independent failures, "service: type": each must
	// arrive as an event of its own.
	origins []string
	// noise are events that arrive although they are not origins, and why.
	noise []string
	// hidden are origins that do not arrive: the one case the
	// acknowledgement documents it cannot tell from a cascade.
	hidden []string
}

var scenarios = []scenario{{
	name: "chain of four",
	build: func(t *testing.T, sys system) (string, string) {
		edge, gw, order, pay := newService(t, sys, "edge", true), newService(t, sys, "gateway", true),
			newService(t, sys, "order", true), newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.mux.Handle("POST /orders", order.forward(pay, "/charge"))
		gw.mux.Handle("POST /checkout", gw.forward(order, "/orders"))
		edge.mux.Handle("POST /", edge.forward(gw, "/checkout"))
		return "edge", "/"
	},
	origins: []string{"payment: PaymentDeclined"},
}, {
	name: "a failure deep inside one handler",
	build: func(t *testing.T, sys system) (string, string) {
		order := newService(t, sys, "order", true)
		tracer := order.tp.Tracer("order")
		order.mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			ctx, step := tracer.Start(r.Context(), "reserve stock")
			qctx, query := tracer.Start(ctx, "SELECT stock")
			capture(qctx, &StockError{}) // the span processor links it to the handler's span
			query.End()
			step.End()
			capture(r.Context(), &CallFailed{http.StatusInternalServerError})
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "order", "/orders"
	},
	origins: []string{"order: StockError"},
}, {
	name: "in one handler: a step that failed, a retry that succeeded, then a bug",
	build: func(t *testing.T, sys system) (string, string) {
		order := newService(t, sys, "order", true)
		tracer := order.tp.Tracer("order")
		order.mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			for attempt := range 2 {
				ctx, step := tracer.Start(r.Context(), "reserve stock")
				if attempt == 0 {
					capture(ctx, &StockError{}) // fails once, and is retried
				}
				step.End()
			}
			capture(r.Context(), &PriceError{}) // the handler's own bug, after it carried on
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "order", "/orders"
	},
	origins: []string{"order: PriceError", "order: StockError"},
}, {
	name: "a caller that reports before it closes the response",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay := newService(t, sys, "gateway", true), newService(t, sys, "payment", true)
		pay.mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			fail(&PaymentDeclined{}, http.StatusPaymentRequired)(w, r)
			_, _ = w.Write([]byte(`{"error":"declined"}`))
		})
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, pay.srv.URL+"/charge", nil)
			resp, err := gw.http.Do(req)
			if err != nil {
				panic(err)
			}
			defer resp.Body.Close() // the client span is still open at the capture
			if resp.StatusCode >= 400 {
				capture(r.Context(), &CallFailed{resp.StatusCode})
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined"},
}, {
	name: "fan-out to two services that both fail",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay, stock := newService(t, sys, "gateway", true), newService(t, sys, "payment", true),
			newService(t, sys, "stock", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		stock.mux.Handle("POST /reserve", fail(&StockError{}, http.StatusConflict))
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			a, b := gw.call(r.Context(), pay, "/charge"), gw.call(r.Context(), stock, "/reserve")
			capture(r.Context(), &CallFailed{max(a, b)})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined", "stock: StockError"},
}, {
	name: "retry that succeeds, then the caller's own bug",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay := newService(t, sys, "gateway", true), newService(t, sys, "payment", true)
		var tries sync.Map
		pay.mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			tid := trace.SpanContextFromContext(r.Context()).TraceID()
			if _, again := tries.LoadOrStore(tid, true); !again {
				fail(&PaymentDeclined{}, http.StatusServiceUnavailable)(w, r)
			}
		})
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			for gw.call(r.Context(), pay, "/charge") >= 500 {
			}
			var m map[string]int
			//lint:ignore SA5000 the gateway's own bug, on purpose: sentryhttp recovers it
			m["receipts"]++
		})
		return "gateway", "/checkout"
	},
	origins: []string{"gateway: runtime.plainError", "payment: PaymentDeclined"},
}, {
	name: "retry that keeps failing",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay := newService(t, sys, "gateway", true), newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusServiceUnavailable))
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			st := 0
			for range 3 {
				st = gw.call(r.Context(), pay, "/charge")
			}
			capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined"},
}, {
	name: "two independent failures in one service of one trace",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay := newService(t, sys, "gateway", true), newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		pay.mux.Handle("POST /refund", fail(&RefundFailed{}, http.StatusInternalServerError))
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			a, b := gw.call(r.Context(), pay, "/charge"), gw.call(r.Context(), pay, "/refund")
			capture(r.Context(), &CallFailed{max(a, b)})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined", "payment: RefundFailed"},
}, {
	name: "two failures on sibling goroutines of one handler",
	build: func(t *testing.T, sys system) (string, string) {
		gw := newService(t, sys, "gateway", true)
		tracer := gw.tp.Tracer("gateway")
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			var wg sync.WaitGroup
			for _, err := range []error{&StockError{}, &PriceError{}} {
				wg.Go(func() {
					ctx, span := tracer.Start(r.Context(), fmt.Sprintf("%T", err))
					defer span.End()
					capture(ctx, err)
				})
			}
			wg.Wait()
			capture(r.Context(), &CallFailed{http.StatusInternalServerError})
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "gateway", "/checkout"
	},
	origins: []string{"gateway: PriceError", "gateway: StockError"},
}, {
	name: "graceful degradation",
	build: func(t *testing.T, sys system) (string, string) {
		gw, rec := newService(t, sys, "gateway", true), newService(t, sys, "recommendation", true)
		rec.mux.Handle("POST /recommend", fail(&StockError{}, http.StatusInternalServerError))
		gw.mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
			_ = gw.call(r.Context(), rec, "/recommend") // falls back to no recommendations
		})
		return "gateway", "/home"
	},
	origins: []string{"recommendation: StockError"},
}, {
	name: "graceful degradation, then the caller's own bug: the documented limit",
	build: func(t *testing.T, sys system) (string, string) {
		return degradeThenFail(t, sys)
	},
	origins: []string{"recommendation: StockError"},
	hidden:  []string{"gateway: PriceError"},
}, {
	name: "the same with WithCascadeTypes: only CallFailed follows from a call",
	build: func(t *testing.T, sys system) (string, string) {
		return degradeThenFail(t, sys, dedup.WithCascadeTypes("CallFailed"))
	},
	origins: []string{"gateway: PriceError", "recommendation: StockError"},
}, {
	name: "graceful degradation into other work, then the caller's own bug",
	build: func(t *testing.T, sys system) (string, string) {
		gw, rec := newService(t, sys, "gateway", true), newService(t, sys, "recommendation", true)
		rec.mux.Handle("POST /recommend", fail(&StockError{}, http.StatusInternalServerError))
		tracer := gw.tp.Tracer("gateway")
		gw.mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
			if gw.call(r.Context(), rec, "/recommend") >= 500 {
				_, fallback := tracer.Start(r.Context(), "best sellers from cache")
				fallback.End()
			}
			capture(r.Context(), &PriceError{}) // its own bug, after it carried on
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "gateway", "/home"
	},
	origins: []string{"gateway: PriceError", "recommendation: StockError"},
}, {
	name: "a service in the middle without tracedup",
	build: func(t *testing.T, sys system) (string, string) {
		gw, order, pay := newService(t, sys, "gateway", true), newService(t, sys, "order", false),
			newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.mux.Handle("POST /orders", order.forward(pay, "/charge"))
		gw.mux.Handle("POST /checkout", gw.forward(order, "/orders"))
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined"},
	noise: []string{
		"gateway: CallFailed", // order cannot acknowledge: the gateway reports its own
		"order: CallFailed",   // order runs the hook alone
	},
}, {
	name: "info messages in a failing trace",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay, stock := newService(t, sys, "gateway", true), newService(t, sys, "payment", true),
			newService(t, sys, "stock", true)
		tracer := pay.tp.Tracer("payment")
		pay.mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			// An info message on a deeper span is no root cause.
			ctx, span := tracer.Start(r.Context(), "fraud check")
			sentry.GetHubFromContext(ctx).Client().CaptureMessage("fraud check slow",
				&sentry.EventHint{Context: ctx}, sentry.GetHubFromContext(ctx).Scope())
			span.End()
			fail(&PaymentDeclined{}, http.StatusPaymentRequired)(w, r)
		})
		stock.mux.HandleFunc("POST /reserve", func(w http.ResponseWriter, r *http.Request) {
			// Only a message, then a failure it does not report: its
			// caller's error must not be silenced.
			sentry.GetHubFromContext(r.Context()).Client().CaptureMessage("stock low",
				&sentry.EventHint{Context: r.Context()}, sentry.GetHubFromContext(r.Context()).Scope())
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			if gw.call(r.Context(), stock, "/reserve") >= 500 {
				capture(r.Context(), &StockError{})
			}
			ctx, span := gw.tp.Tracer("gateway").Start(r.Context(), "pay")
			defer span.End()
			if st := gw.call(ctx, pay, "/charge"); st >= 400 {
				capture(ctx, &CallFailed{st})
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		return "gateway", "/checkout"
	},
	origins: []string{"gateway: StockError", "payment: PaymentDeclined"},
	noise: []string{
		"payment: message: fraud check slow", // info messages pass through, as they are
		"stock: message: stock low",
	},
}, {
	name: "an error in a background goroutine after the response was written",
	build: func(t *testing.T, sys system) (string, string) {
		gw, order, pay := newService(t, sys, "gateway", true), newService(t, sys, "order", true),
			newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		tracer := order.tp.Tracer("order")
		order.mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			st := order.call(r.Context(), pay, "/charge")
			capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
			// After the response: write the audit record, which fails.
			ctx, span := tracer.Start(r.Context(), "audit")
			order.bg.Go(func() {
				defer span.End()
				<-r.Context().Done() // the request is over
				capture(ctx, &AuditLost{})
			})
		})
		gw.mux.Handle("POST /checkout", gw.forward(order, "/orders"))
		return "gateway", "/checkout"
	},
	origins: []string{"order: AuditLost", "payment: PaymentDeclined"},
}, {
	name: "a background error on the request's own span after it ended",
	build: func(t *testing.T, sys system) (string, string) {
		order, pay := newService(t, sys, "order", true), newService(t, sys, "payment", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			st := order.call(r.Context(), pay, "/charge")
			capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
			ctx := context.WithoutCancel(r.Context()) // the same span, outliving the request
			done := r.Context().Done()
			order.bg.Go(func() {
				<-done
				capture(ctx, &AuditLost{})
			})
		})
		return "order", "/orders"
	},
	origins: []string{"order: AuditLost", "payment: PaymentDeclined"},
}, {
	name: "a caller that compensates before it fails",
	build: func(t *testing.T, sys system) (string, string) {
		gw, pay, stock := newService(t, sys, "gateway", true), newService(t, sys, "payment", true),
			newService(t, sys, "stock", true)
		pay.mux.Handle("POST /charge", fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		stock.mux.HandleFunc("POST /release", func(http.ResponseWriter, *http.Request) {})
		gw.mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			st := gw.call(r.Context(), pay, "/charge")
			gw.call(r.Context(), stock, "/release") // puts the reserved stock back
			capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	origins: []string{"payment: PaymentDeclined"},
	noise: []string{
		// The span went on calling after the failure: its error is no
		// longer known to follow from it, and is sent.
		"gateway: CallFailed",
	},
}}

// degradeThenFail is a gateway that calls recommendation, which fails, falls
// back without a span, then fails on its own bug in the same span.
func degradeThenFail(t *testing.T, sys system, options ...dedup.Option) (string, string) {
	gw := newService(t, sys, "gateway", true, options...)
	rec := newService(t, sys, "recommendation", true)
	rec.mux.Handle("POST /recommend", fail(&StockError{}, http.StatusInternalServerError))
	gw.mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
		_ = gw.call(r.Context(), rec, "/recommend") // falls back, reports nothing
		capture(r.Context(), &PriceError{})         // its own bug
		w.WriteHeader(http.StatusInternalServerError)
	})
	return "gateway", "/home"
}

// TestScenarios runs each scenario for a few requests and checks that every
// origin arrives as an event of its own and nothing else does; it logs the
// table of recall and precision (go test -run TestScenarios -v).
func TestScenarios(t *testing.T) {
	const requests = 5
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-76s %8s %6s %9s %9s\n", "scenario", "captured", "sent", "recall", "precision")
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sys := system{}
			entry, path := sc.build(t, sys)
			var want []string
			for range requests {
				sys.request(t, entry, path)
				want = append(want, sc.origins...)
				want = append(want, sc.noise...)
			}
			got := sys.sent(t)
			slices.Sort(want)
			assert.Equal(t, want, got, "what reached Sentry")

			captured := 0
			for _, s := range sys {
				if s.dedup != nil {
					captured += int(s.dedup.Stats().Received)
				} else {
					captured += len(s.recorder.Events())
				}
			}
			recall, precision := score(got, append(slices.Clone(sc.origins), sc.hidden...), requests)
			fmt.Fprintf(&table, "%-76s %8d %6d %8.0f%% %8.0f%%\n", sc.name, captured, len(got), 100*recall, 100*precision)
		})
	}
	t.Log(table.String())
}

// score returns the fraction of origins that arrived (recall) and of the
// error events that arrived that are origins (precision), over n requests.
// Messages are no errors: they count in neither.
func score(got, origins []string, n int) (recall, precision float64) {
	got = slices.DeleteFunc(slices.Clone(got), func(s string) bool { return strings.Contains(s, ": message: ") })
	left := slices.Clone(got)
	found := 0
	for range n {
		for _, o := range origins {
			if i := slices.Index(left, o); i >= 0 {
				left = slices.Delete(left, i, i+1)
				found++
			}
		}
	}
	recall = float64(found) / float64(n*len(origins))
	if len(got) > 0 {
		precision = float64(found) / float64(len(got))
	}
	return recall, precision
}
