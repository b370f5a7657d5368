package main

import (
	"context"
	"io"
	"os"
	"time"
)

// Example_report runs the command against a stand-in for sentry.io holding
// four failed requests through gateway -> order -> payment, one Sentry
// project and issue per service, services without tracedup's hook. The first
// two and the fourth sent transactions; the third did not (its services
// sampled it out). The fourth also failed in stock, independently. order's
// clock runs 40 ms slow. Errors are read as full events, whose timestamps
// carry the milliseconds (Discover's are whole seconds). Progress and notes,
// on stderr, are left out.
func Example_report() {
	f := startRealFixture()
	defer f.Close()
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	for n := range 3 {
		f.addTrace(n, at.Add(time.Duration(n)*time.Minute), cascadeHops(n, -40*time.Millisecond), n != 2, false)
	}
	f.addTrace(3, at.Add(3*time.Minute), twoFailureHops(3), true, false)
	f.addStockCall(3)
	run(context.Background(),
		[]string{"-url", f.URL, "-org", "acme", "-since", "24h", "-read", "full"},
		env(map[string]string{"SENTRY_AUTH_TOKEN": testToken}), os.Stdout, io.Discard)
	// Output:
	// Duplicate report for acme (all projects), last 24h, strategy Deepest{tie:Earliest}
	//
	// error events read         13
	//   without a trace id      0
	// traces                    4
	// incidents by known links  7  (the deduplicator would send one event each)
	// known cascades            3  (in 3 traces; 6 known duplicate events)
	// traces, link not known    1  (same request: 3 errors, 2 likely duplicates)
	// traces with transactions  3  (of 4 read, 4 needing links; 10 transactions read)
	//
	// Known cascades: span links say which error followed from which
	// TRACE                             SERVICE  ISSUE  EVENT      EXCEPTION              MESSAGE
	// 7a0c0000000000000000000000000001  order    200    e3c6ef36…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   payment  300    edaa66d1…  *main.PaymentDeclined  card declined  <- root cause
	//                                   gateway  100    e9e3779b…  *main.DownstreamError  order service: 502 Bad Gateway
	// 7a0c0000000000000000000000000002  order    200    eb54cda2…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   payment  300    e538453d…  *main.PaymentDeclined  card declined  <- root cause
	//                                   gateway  100    e1715607…  *main.DownstreamError  order service: 502 Bad Gateway
	// 7a0c0000000000000000000000000004  payment  300    e4540215…  *main.PaymentDeclined  card declined  <- root cause
	//                                   order    200    ea708a7a…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   gateway  100    e08d12df…  *main.DownstreamError  order service: 502 Bad Gateway
	//
	// Same request, link not known: errors of one trace that no span link ties; judge by the evidence
	// (CLOCK: from the trace's first error, by each host's own clock; SPAN: where the error was captured)
	// TRACE                             CLOCK  SERVICE  ISSUE  EVENT      EXCEPTION              MESSAGE                           SPAN
	// 7a0c0000000000000000000000000003  +0s    order    200    e2e2ac0e…  *main.DownstreamError  payment service: 502 Bad Gateway  called from another span
	//                                   +30ms  payment  300    ecc623a9…  *main.PaymentDeclined  card declined                     called from another span  <- likely root cause
	//                                   +50ms  gateway  100    e8ff3473…  *main.DownstreamError  order service: 502 Bad Gateway    trace's root span
	//                                   (no transactions in Sentry for this trace: its services send none, or sampled it out)
	//
	// Known symptoms: in every trace where they appear, a span link makes them symptoms; merge them into their root cause's issue, or mute them
	//   none
	//
	// Likely symptoms: never a root cause, and in every trace where they appear another issue came with them downstream, the link not always known
	// ISSUE  TITLE                                                    SERVICES  TRACES  LINK KNOWN IN  COMES WITH, DOWNSTREAM
	// 100    *main.DownstreamError: order service: 502 Bad Gateway    gateway   4       3              300 "*main.PaymentDeclined: card declined" (4 traces)
	// 200    *main.DownstreamError: payment service: 502 Bad Gateway  order     4       3              300 "*main.PaymentDeclined: card declined" (4 traces)
}
