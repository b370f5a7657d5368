package rootcause_test

import (
	"time"

	"github.com/tracedup/tracedup/rootcause"
)

// t0 is the instant the test traces start at.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// e builds an Error: id is its EventID, at its Timestamp relative to t0.
func e(id, span, parent string, at time.Duration) rootcause.Error {
	return rootcause.Error{
		EventID:      id,
		TraceID:      "0af7651916cd43dd8448eb211c80319c",
		SpanID:       span,
		ParentSpanID: parent,
		Timestamp:    t0.Add(at),
	}
}

// typed returns err with Service and ExceptionType set.
func typed(err rootcause.Error, service, exceptionType string) rootcause.Error {
	err.Service = service
	err.ExceptionType = exceptionType
	return err
}

// pick returns the EventID a strategy chooses, or "<n>" for an index out of
// range, so that failures show which error was chosen rather than an index.
func pick(s rootcause.Strategy, errs []rootcause.Error) string {
	i := s.RootCause(errs)
	if i < 0 || i >= len(errs) {
		return "<out of range>"
	}
	return errs[i].EventID
}

// article returns the article's cascade: payment fails with PaymentDeclined,
// order reports ServiceCallFailed, the gateway DownstreamError on the root
// span. Each service captures on its server span; with linked, each
// server span's parent is the caller's server span (as when the caller
// captured on the span that made the call); otherwise it is the caller's
// client span, on which no error was captured (a gap). skew shifts the
// payment service's clock.
func article(linked bool, skew time.Duration) []rootcause.Error {
	orderParent, paymentParent := "gw-client", "order-client"
	if linked {
		orderParent, paymentParent = "gw", "order"
	}
	return []rootcause.Error{
		typed(e("gateway", "gw", "", 30*time.Millisecond), "gateway", "*main.DownstreamError"),
		typed(e("order", "order", orderParent, 20*time.Millisecond), "order", "*main.ServiceCallFailed"),
		typed(e("payment", "payment", paymentParent, 10*time.Millisecond+skew), "payment", "*main.PaymentDeclined"),
	}
}
