package main

import (
	"context"
	"io"
	"os"
)

// Example_report runs the command against a stand-in for sentry.io holding
// three failed requests, each a gateway -> order -> payment cascade with one
// Sentry project and one issue per service, read through Discover (whose
// timestamps are whole seconds, hence the order of the rows). Progress, on
// stderr, is left out.
func Example_report() {
	f := startFixture()
	defer f.Close()
	run(context.Background(),
		[]string{"-url", f.URL, "-org", "acme", "-project", "gateway,order,payment", "-since", "24h"},
		env(map[string]string{"SENTRY_AUTH_TOKEN": testToken}), os.Stdout, io.Discard)
	// Output:
	// Duplicate report for acme/gateway,order,payment, last 24h, strategy Deepest{tie:Earliest}
	//
	// error events read       9
	//   without a trace id    0
	// traces                  3
	// incidents               3  (independent failures: one root cause each)
	// traces with duplicates  3
	// duplicate events        6  (the deduplicator would suppress them)
	//
	// Cascades: traces with more than one error
	// TRACE                             SERVICE  ISSUE  EVENT      EXCEPTION              MESSAGE
	// 4bf92f3577b34da6a3ce929d0e0e4700  order    200    3c6ef362…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   gateway  100    9e3779b1…  *main.DownstreamError  order service: 502 Bad Gateway
	//                                   payment  300    daa66d13…  *main.PaymentDeclined  card declined  <- root cause
	// 4bf92f3577b34da6a3ce929d0e0e4701  order    200    17156075…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   gateway  100    78dde6c4…  *main.DownstreamError  order service: 502 Bad Gateway
	//                                   payment  300    b54cda26…  *main.PaymentDeclined  card declined  <- root cause
	// 4bf92f3577b34da6a3ce929d0e0e4702  order    200    f1bbcd88…  *main.DownstreamError  payment service: 502 Bad Gateway
	//                                   gateway  100    538453d7…  *main.DownstreamError  order service: 502 Bad Gateway
	//                                   payment  300    8ff34739…  *main.PaymentDeclined  card declined  <- root cause
	//
	// Issues that only appear as symptoms: merge them into their root cause's issue, or mute them
	// ISSUE  TITLE                                                    SERVICES  TRACES  EVENTS  SYMPTOM OF
	// 100    *main.DownstreamError: order service: 502 Bad Gateway    gateway   3       3       300 "*main.PaymentDeclined: card declined" (3 traces)
	// 200    *main.DownstreamError: payment service: 502 Bad Gateway  order     3       3       300 "*main.PaymentDeclined: card declined" (3 traces)
}
