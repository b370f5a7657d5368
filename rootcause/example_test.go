package rootcause_test

import (
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/rootcause"
)

// cascade returns the article's cascade as the deduplicator sees it: the
// gateway's error arrived first, and the payment service's clock is two
// seconds ahead of the others.
func cascade() []rootcause.Error {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []rootcause.Error{{
		Service: "gateway", ExceptionType: "*main.DownstreamError", Message: "order service: 502",
		SpanID: "a1a1a1a1a1a1a1a1", ParentSpanID: "", // the trace's root span
		Timestamp: start.Add(30 * time.Millisecond),
	}, {
		Service: "order", ExceptionType: "*main.ServiceCallFailed", Message: "payment service: 402",
		SpanID: "b2b2b2b2b2b2b2b2", ParentSpanID: "a1a1a1a1a1a1a1a1",
		Timestamp: start.Add(20 * time.Millisecond),
	}, {
		Service: "payment", ExceptionType: "*main.PaymentDeclined", Message: "card declined",
		SpanID: "c3c3c3c3c3c3c3c3", ParentSpanID: "b2b2b2b2b2b2b2b2",
		Timestamp: start.Add(2*time.Second + 10*time.Millisecond),
	}}
}

func ExampleDeepest() {
	errs := cascade()
	for _, s := range []rootcause.Strategy{rootcause.Earliest(), rootcause.Deepest()} {
		root := errs[s.RootCause(errs)]
		fmt.Printf("%s: %s %s (%s)\n", rootcause.Describe(s), root.Service, root.ShortType(), root.Message)
	}
	// Output:
	// Earliest: order ServiceCallFailed (payment service: 402)
	// Deepest{tie:Earliest}: payment PaymentDeclined (card declined)
}

func ExampleStrategyFunc() {
	// Blame the payment service whenever it reported an error, since every
	// other service calls it; otherwise let the default decide.
	preferPayment := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
		for i, e := range errs {
			if e.Service == "payment" {
				return i
			}
		}
		return rootcause.Default().RootCause(errs)
	})

	errs := cascade()
	fmt.Println(errs[preferPayment.RootCause(errs)].Message)
	// Output:
	// card declined
}

func ExampleFirstOf() {
	// An event tagged root_cause=true by the application wins; without one,
	// Deepest decides.
	tagged := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
		for i, e := range errs {
			if e.Event != nil && e.Event.Tags["root_cause"] == "true" {
				return i
			}
		}
		return -1 // no opinion: FirstOf asks the next strategy
	})
	s := rootcause.FirstOf(tagged, rootcause.Deepest())

	errs := cascade()
	fmt.Println(errs[s.RootCause(errs)].Service)
	errs[1].Event = &sentry.Event{Tags: map[string]string{"root_cause": "true"}}
	fmt.Println(errs[s.RootCause(errs)].Service)
	fmt.Println(rootcause.Describe(s))
	// Output:
	// payment
	// order
	// FirstOf{rootcause.StrategyFunc,Deepest{tie:Earliest}}
}

func ExampleDemoteTypes() {
	// The payment service's server span is a child of the order service's
	// client span, on which nothing was captured: the link between them is
	// unknown, and with payment's clock ahead, time alone blames order.
	errs := cascade()
	errs[2].ParentSpanID = "d4d4d4d4d4d4d4d4"

	deepest := rootcause.Deepest()
	fmt.Println(rootcause.Describe(deepest)+":", errs[deepest.RootCause(errs)].Service)

	// Wrapper types name the symptoms whatever the links and clocks say.
	s := rootcause.DemoteTypes(deepest, "DownstreamError", "ServiceCallFailed")
	fmt.Println(rootcause.Describe(s)+":", errs[s.RootCause(errs)].Service)
	// Output:
	// Deepest{tie:Earliest}: order
	// DemoteTypes{DownstreamError,ServiceCallFailed}->Deepest{tie:Earliest}: payment
}
