package scenario

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
)

// Scenario is one system, the requests it serves, and what must reach
// Sentry: every origin, and nothing else unless the scenario says why.
type Scenario struct {
	Name string
	// Build starts the services and routes, and returns the entry service
	// and path.
	Build func(t testing.TB, sys *System) (entry, path string)
	// Options are the deduplicators' options: every service's own in the
	// acknowledgement, the relay's. They say what is true of the whole
	// fleet (the types it wraps a failed call in).
	Options []dedup.Option
	// Origins are the independent failures, "service: type": each must
	// arrive as an event of its own, but those a wiring's Hidden names.
	Origins []string
	// Expect is what else arrives, or does not, in every wiring but those
	// Differ names.
	Expect
	// Differ is what a wiring, by its name, sees differently, and why.
	Differ map[string]Expect
}

// Expect is what arrives beside the origins, and which origins do not.
type Expect struct {
	// Noise are events that arrive although they are not origins; the
	// table says why of each.
	Noise []string
	// Hidden are origins that do not arrive: a limit the scenario
	// documents (a failure the rule cannot tell from a cascade).
	Hidden []string
	// Why is, for a wiring's Expect in Differ, in one line, why the wiring
	// sees it differently.
	Why string
}

// For returns what sc expects under the wiring named wiring.
func (sc *Scenario) For(wiring string) Expect {
	if e, ok := sc.Differ[wiring]; ok {
		return e
	}
	return sc.Expect
}

var Scenarios = []Scenario{{
	Name: "chain of four",
	Build: func(t testing.TB, sys *System) (string, string) {
		edge, gw, order, pay := sys.Start(t, "edge", true), sys.Start(t, "gateway", true),
			sys.Start(t, "order", true), sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))
		gw.Mux.Handle("POST /checkout", gw.Forward(order, "/orders"))
		edge.Mux.Handle("POST /", edge.Forward(gw, "/checkout"))
		return "edge", "/"
	},
	Origins: []string{"payment: PaymentDeclined"},
}, {
	Name: "a failure deep inside one handler",
	Build: func(t testing.TB, sys *System) (string, string) {
		order := sys.Start(t, "order", true)
		tracer := order.TP.Tracer("order")
		order.Mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			ctx, step := tracer.Start(r.Context(), "reserve stock")
			qctx, query := tracer.Start(ctx, "SELECT stock")
			Capture(qctx, &StockError{}) // the span processor links it to the handler's span
			query.End()
			step.End()
			Capture(r.Context(), &CallFailed{http.StatusInternalServerError})
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "order", "/orders"
	},
	Origins: []string{"order: StockError"},
}, {
	Name: "in one handler: a step that failed, a retry that succeeded, then a bug",
	Build: func(t testing.TB, sys *System) (string, string) {
		order := sys.Start(t, "order", true)
		tracer := order.TP.Tracer("order")
		order.Mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			for attempt := range 2 {
				ctx, step := tracer.Start(r.Context(), "reserve stock")
				if attempt == 0 {
					Capture(ctx, &StockError{}) // fails once, and is retried
				}
				step.End()
			}
			Capture(r.Context(), &PriceError{}) // the handler's own bug, after it carried on
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "order", "/orders"
	},
	Origins: []string{"order: PriceError", "order: StockError"},
}, {
	Name: "a caller that reports before it closes the response",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay := sys.Start(t, "gateway", true), sys.Start(t, "payment", true)
		pay.Mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			Fail(&PaymentDeclined{}, http.StatusPaymentRequired)(w, r)
			_, _ = w.Write([]byte(`{"error":"declined"}`))
		})
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, pay.Srv.URL+"/charge", nil)
			resp, err := gw.HTTP.Do(req)
			if err != nil {
				panic(err)
			}
			defer resp.Body.Close() // the client span is still open at the capture
			if resp.StatusCode >= 400 {
				Capture(r.Context(), &CallFailed{resp.StatusCode})
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined"},
}, {
	Name: "fan-out to two services that both fail",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay, stock := sys.Start(t, "gateway", true), sys.Start(t, "payment", true),
			sys.Start(t, "stock", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		stock.Mux.Handle("POST /reserve", Fail(&StockError{}, http.StatusConflict))
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			a, b := gw.Call(r.Context(), pay, "/charge"), gw.Call(r.Context(), stock, "/reserve")
			Capture(r.Context(), &CallFailed{max(a, b)})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined", "stock: StockError"},
}, {
	Name: "retry that succeeds, then the caller's own bug",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay := sys.Start(t, "gateway", true), sys.Start(t, "payment", true)
		var tries sync.Map
		pay.Mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			tid := trace.SpanContextFromContext(r.Context()).TraceID()
			if _, again := tries.LoadOrStore(tid, true); !again {
				Fail(&PaymentDeclined{}, http.StatusServiceUnavailable)(w, r)
			}
		})
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			for gw.Call(r.Context(), pay, "/charge") >= 500 {
			}
			var m map[string]int
			//lint:ignore SA5000 the gateway's own bug, on purpose: sentryhttp recovers it
			m["receipts"]++
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"gateway: runtime.plainError", "payment: PaymentDeclined"},
}, {
	Name: "retry that keeps failing",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay := sys.Start(t, "gateway", true), sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusServiceUnavailable))
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			st := 0
			for range 3 {
				st = gw.Call(r.Context(), pay, "/charge")
			}
			Capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined"},
}, {
	Name: "two independent failures in one service of one trace",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay := sys.Start(t, "gateway", true), sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		pay.Mux.Handle("POST /refund", Fail(&RefundFailed{}, http.StatusInternalServerError))
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			a, b := gw.Call(r.Context(), pay, "/charge"), gw.Call(r.Context(), pay, "/refund")
			Capture(r.Context(), &CallFailed{max(a, b)})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined", "payment: RefundFailed"},
}, {
	Name: "two failures on sibling goroutines of one handler",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw := sys.Start(t, "gateway", true)
		tracer := gw.TP.Tracer("gateway")
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			var wg sync.WaitGroup
			for _, err := range []error{&StockError{}, &PriceError{}} {
				wg.Go(func() {
					ctx, span := tracer.Start(r.Context(), fmt.Sprintf("%T", err))
					defer span.End()
					Capture(ctx, err)
				})
			}
			wg.Wait()
			Capture(r.Context(), &CallFailed{http.StatusInternalServerError})
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"gateway: PriceError", "gateway: StockError"},
}, {
	Name: "graceful degradation",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, rec := sys.Start(t, "gateway", true), sys.Start(t, "recommendation", true)
		rec.Mux.Handle("POST /recommend", Fail(&StockError{}, http.StatusInternalServerError))
		gw.Mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
			_ = gw.Call(r.Context(), rec, "/recommend") // falls back to no recommendations
		})
		return "gateway", "/home"
	},
	Origins: []string{"recommendation: StockError"},
}, {
	Name: "graceful degradation, then the caller's own bug: the documented limit",
	Build: func(t testing.TB, sys *System) (string, string) {
		return degradeThenFail(t, sys)
	},
	Origins: []string{"gateway: PriceError", "recommendation: StockError"},
	// No span marks the fallback: in every wiring, the bug on the span
	// whose last child is the failed call looks like that call's cascade.
	Expect: Expect{Hidden: []string{"gateway: PriceError"}},
}, {
	Name: "the same with WithCascadeTypes: only CallFailed follows from a call",
	Build: func(t testing.TB, sys *System) (string, string) {
		return degradeThenFail(t, sys)
	},
	Options: []dedup.Option{dedup.WithCascadeTypes("CallFailed")},
	Origins: []string{"gateway: PriceError", "recommendation: StockError"},
}, {
	Name: "graceful degradation into other work, then the caller's own bug",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, rec := sys.Start(t, "gateway", true), sys.Start(t, "recommendation", true)
		rec.Mux.Handle("POST /recommend", Fail(&StockError{}, http.StatusInternalServerError))
		tracer := gw.TP.Tracer("gateway")
		gw.Mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
			if gw.Call(r.Context(), rec, "/recommend") >= 500 {
				_, fallback := tracer.Start(r.Context(), "best sellers from cache")
				fallback.End()
			}
			Capture(r.Context(), &PriceError{}) // its own bug, after it carried on
			w.WriteHeader(http.StatusInternalServerError)
		})
		return "gateway", "/home"
	},
	Origins: []string{"gateway: PriceError", "recommendation: StockError"},
}, {
	Name: "a service in the middle without tracedup",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, order, pay := sys.Start(t, "gateway", true), sys.Start(t, "order", false),
			sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))
		gw.Mux.Handle("POST /checkout", gw.Forward(order, "/orders"))
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined"},
	Expect: Expect{Noise: []string{
		"gateway: CallFailed", // order cannot acknowledge: the gateway reports its own
		"order: CallFailed",   // order runs the hook alone
	}},
	Differ: map[string]Expect{"relay": {
		Why: "order still sends to the relay, which sees its error and the gateway's and the spans that link them to payment's",
	}},
}, {
	Name: "info messages in a failing trace",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay, stock := sys.Start(t, "gateway", true), sys.Start(t, "payment", true),
			sys.Start(t, "stock", true)
		tracer := pay.TP.Tracer("payment")
		pay.Mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
			// An info message on a deeper span is no root cause.
			ctx, span := tracer.Start(r.Context(), "fraud check")
			sentry.GetHubFromContext(ctx).Client().CaptureMessage("fraud check slow",
				&sentry.EventHint{Context: ctx}, sentry.GetHubFromContext(ctx).Scope())
			span.End()
			Fail(&PaymentDeclined{}, http.StatusPaymentRequired)(w, r)
		})
		stock.Mux.HandleFunc("POST /reserve", func(w http.ResponseWriter, r *http.Request) {
			// Only a message, then a failure it does not report: its
			// caller's error must not be silenced.
			sentry.GetHubFromContext(r.Context()).Client().CaptureMessage("stock low",
				&sentry.EventHint{Context: r.Context()}, sentry.GetHubFromContext(r.Context()).Scope())
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			if gw.Call(r.Context(), stock, "/reserve") >= 500 {
				Capture(r.Context(), &StockError{})
			}
			ctx, span := gw.TP.Tracer("gateway").Start(r.Context(), "pay")
			defer span.End()
			if st := gw.Call(ctx, pay, "/charge"); st >= 400 {
				Capture(ctx, &CallFailed{st})
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"gateway: StockError", "payment: PaymentDeclined"},
	Expect: Expect{Noise: []string{
		"payment: message: fraud check slow", // info messages pass through, as they are
		"stock: message: stock low",
	}},
}, {
	Name: "an error in a background goroutine after the response was written",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, order, pay := sys.Start(t, "gateway", true), sys.Start(t, "order", true),
			sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		tracer := order.TP.Tracer("order")
		order.Mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			st := order.Call(r.Context(), pay, "/charge")
			Capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
			// After the response: write the audit record, which fails.
			ctx, span := tracer.Start(r.Context(), "audit")
			order.BG.Go(func() {
				defer span.End()
				<-r.Context().Done() // the request is over
				Capture(ctx, &AuditLost{})
			})
		})
		gw.Mux.Handle("POST /checkout", gw.Forward(order, "/orders"))
		return "gateway", "/checkout"
	},
	Origins: []string{"order: AuditLost", "payment: PaymentDeclined"},
}, {
	Name: "a background error on the request's own span after it ended",
	Build: func(t testing.TB, sys *System) (string, string) {
		order, pay := sys.Start(t, "order", true), sys.Start(t, "payment", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		order.Mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			st := order.Call(r.Context(), pay, "/charge")
			Capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
			ctx := context.WithoutCancel(r.Context()) // the same span, outliving the request
			done := r.Context().Done()
			order.BG.Go(func() {
				<-done
				Capture(ctx, &AuditLost{})
			})
		})
		return "order", "/orders"
	},
	Origins: []string{"order: AuditLost", "payment: PaymentDeclined"},
}, {
	Name: "a caller that compensates before it fails",
	Build: func(t testing.TB, sys *System) (string, string) {
		gw, pay, stock := sys.Start(t, "gateway", true), sys.Start(t, "payment", true),
			sys.Start(t, "stock", true)
		pay.Mux.Handle("POST /charge", Fail(&PaymentDeclined{}, http.StatusPaymentRequired))
		stock.Mux.HandleFunc("POST /release", func(http.ResponseWriter, *http.Request) {})
		gw.Mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
			st := gw.Call(r.Context(), pay, "/charge")
			gw.Call(r.Context(), stock, "/release") // puts the reserved stock back
			Capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		})
		return "gateway", "/checkout"
	},
	Origins: []string{"payment: PaymentDeclined"},
	Expect: Expect{Noise: []string{
		// The span went on calling after the failure: its error is no
		// longer known to follow from it, and is sent.
		"gateway: CallFailed",
	}},
}}

// degradeThenFail is a gateway that calls recommendation, which fails, falls
// back without a span, then fails on its own bug in the same span.
func degradeThenFail(t testing.TB, sys *System) (string, string) {
	gw := sys.Start(t, "gateway", true)
	rec := sys.Start(t, "recommendation", true)
	rec.Mux.Handle("POST /recommend", Fail(&StockError{}, http.StatusInternalServerError))
	gw.Mux.HandleFunc("POST /home", func(w http.ResponseWriter, r *http.Request) {
		_ = gw.Call(r.Context(), rec, "/recommend") // falls back, reports nothing
		Capture(r.Context(), &PriceError{})         // its own bug
		w.WriteHeader(http.StatusInternalServerError)
	})
	return "gateway", "/home"
}
