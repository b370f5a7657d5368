package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// failing is how many requests each end-to-end test sends; all of them fail.
const failing = 20

// e2e runs topo against a fresh fake Sentry with failing requests that all
// fail, and returns what the clients did and what the endpoint received.
// The dedup window is left at its default (5 s): the final flush ends every
// window, so no timer decides anything while the test runs.
func e2e(t *testing.T, topo topology) (*result, []fakesentry.Event) {
	t.Helper()
	fake, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { assert.NoError(t, fake.Close()) }()
	topo.dsn = fake.DSN()
	res, err := simulate(context.Background(), topo, plan(failing, 1, 1), 4, nil)
	require.NoError(t, err)
	require.Equal(t, failing, res.failed, "requests the gateway failed")
	// simulate returns after flushing every client: what was sent has
	// arrived.
	events := fake.Events()
	require.Zero(t, fake.Stats().Rejected, "fake Sentry rejected requests: %s", fake.Stats().LastRejection)
	return res, events
}

// what is an event as the tests look at it: who reported what.
type what struct{ service, typ string }

func whatOf(ev fakesentry.Event) what {
	return what{ev.Event.Tags[sentryotel.TagServiceName], exceptionType(ev.Event)}
}

var (
	paymentDeclined   = what{payment, "*main.PaymentDeclined"}
	serviceCallFailed = what{order, "*main.ServiceCallFailed"}
	downstreamError   = what{gateway, "*main.DownstreamError"}
)

// count returns how many events each (service, type) has.
func count(events []fakesentry.Event) map[what]int {
	n := map[what]int{}
	for _, ev := range events {
		n[whatOf(ev)]++
	}
	return n
}

// assertBalanced checks dedup's invariant on every client, and that nothing
// is left pending after the flush.
func assertBalanced(t *testing.T, res *result) {
	t.Helper()
	for name, s := range res.stats {
		assert.Equal(t, s.Received, s.Emitted+s.Suppressed+s.Pending, "%s: %+v", name, s)
		assert.Zero(t, s.Pending, "%s: pending after flush", name)
	}
}

// TestTracedupSendsOnlyTheRootCause is the issue's end-to-end test: N failed
// requests through three services, each with its own client, dedup transport
// and the real sentry-go HTTP transport, give N events, each the payment
// error, one per trace; order and the gateway each suppressed N cascades.
func TestTracedupSendsOnlyTheRootCause(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) { testTracedupSendsOnlyTheRootCause(t, p) })
	}
}

// protocols are the ways the services can call each other.
var protocols = []protocol{protocolHTTP, protocolGRPC, protocolMixed}

func testTracedupSendsOnlyTheRootCause(t *testing.T, p protocol) {
	res, events := e2e(t, topology{mode: tracedup, protocol: p})

	require.Len(t, events, failing)
	traces := map[string]bool{}
	for _, ev := range events {
		assert.Equal(t, paymentDeclined, whatOf(ev), "event %s", ev.Raw)
		assert.Empty(t, ev.Event.Fingerprint, "no trace id in the fingerprint with tracedup")
		assert.NotContains(t, ev.Event.Tags, dedup.TagCascadeOf)
		traces[ev.Event.Tags[sentryotel.TagTraceID]] = true
	}
	assert.Len(t, traces, failing, "one event per trace")

	assert.Equal(t, uint64(failing), res.stats[order].Cascades, "order's suppressed cascades")
	assert.Equal(t, uint64(failing), res.stats[gateway].Cascades, "gateway's suppressed cascades")
	assert.Equal(t, uint64(failing), res.stats[order].Suppressed)
	assert.Equal(t, uint64(failing), res.stats[gateway].Suppressed)
	assert.Equal(t, uint64(failing), res.stats[payment].Emitted)
	assert.Zero(t, res.stats[payment].Cascades)
	for _, name := range []string{gateway, order, payment} {
		assert.Equal(t, uint64(failing), res.captured[name], "%s captured", name)
	}
	assertBalanced(t, res)
}

// TestBaselineSendsEveryError: without tracedup every service reports, and
// the hook leaves the fingerprint alone.
func TestBaselineSendsEveryError(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) { testBaselineSendsEveryError(t, p) })
	}
}

func testBaselineSendsEveryError(t *testing.T, p protocol) {
	res, events := e2e(t, topology{mode: baseline, protocol: p})

	require.Len(t, events, 3*failing)
	assert.Equal(t, map[what]int{
		paymentDeclined: failing, serviceCallFailed: failing, downstreamError: failing,
	}, count(events))
	perTrace := map[string]int{}
	for _, ev := range events {
		traceID := ev.Event.Tags[sentryotel.TagTraceID]
		perTrace[traceID]++
		assert.Empty(t, ev.Event.Fingerprint)
	}
	assert.Len(t, perTrace, failing)
	for traceID, n := range perTrace {
		assert.Equal(t, 3, n, "events of trace %s", traceID)
	}
	assert.Empty(t, res.stats, "no dedup in the baseline")

	col := res.column()
	col.receive(events)
	assert.Len(t, col.issues, 3, "one issue per service and type")
	assert.Equal(t, failing, col.rootCauses)
	assert.Equal(t, 2*failing, col.noise)
}

// TestDownstreamWithoutHeader: a service whose server does not answer with
// Tracedup-Reported leaves its caller reporting; nothing is lost.
func TestDownstreamWithoutHeader(t *testing.T) {
	for _, tt := range []struct {
		name  string
		noAck []string
		want  map[what]int
		// cascades each caller suppressed
		orderCascades, gatewayCascades int
	}{
		{
			name:  "payment",
			noAck: []string{payment},
			// Order reports its own error, and tells the gateway so.
			want:            map[what]int{paymentDeclined: failing, serviceCallFailed: failing},
			gatewayCascades: failing,
		},
		{
			name:          "order",
			noAck:         []string{order},
			want:          map[what]int{paymentDeclined: failing, downstreamError: failing},
			orderCascades: failing,
		},
		{
			name:  "payment and order",
			noAck: []string{payment, order},
			want: map[what]int{
				paymentDeclined: failing, serviceCallFailed: failing, downstreamError: failing,
			},
		},
	} {
		for _, p := range protocols {
			t.Run(tt.name+"/"+string(p), func(t *testing.T) {
				noAck := map[string]bool{}
				for _, s := range tt.noAck {
					noAck[s] = true
				}
				res, events := e2e(t, topology{mode: tracedup, noAck: noAck, protocol: p})
				assert.Equal(t, tt.want, count(events))
				assert.Equal(t, uint64(tt.orderCascades), res.stats[order].Cascades, "order's cascades")
				assert.Equal(t, uint64(tt.gatewayCascades), res.stats[gateway].Cascades, "gateway's cascades")
				assertBalanced(t, res)
			})
		}
	}
}

// TestSampledOutDownstreamIsNotAcknowledged: an event that payment's client
// drops before its transport (sampling, BeforeSend) never reaches Sentry, so
// it must not silence order: order reports, and the gateway's error is a
// cascade of order's.
func TestSampledOutDownstreamIsNotAcknowledged(t *testing.T) {
	for _, tt := range []struct {
		name string
		drop func(*sentry.ClientOptions)
	}{
		{"SampleRate", func(o *sentry.ClientOptions) {
			// The smallest rate sentry-go accepts (0 means 1): rand.Float64()
			// is below it only when it returns 0, once in 2^53 draws.
			o.SampleRate = math.SmallestNonzeroFloat64
		}},
		{"BeforeSend", func(o *sentry.ClientOptions) {
			// A team filtering declines out as expected business errors.
			o.BeforeSend = func(*sentry.Event, *sentry.EventHint) *sentry.Event { return nil }
		}},
	} {
		for _, p := range protocols {
			t.Run(tt.name+"/"+string(p), func(t *testing.T) {
				res, events := e2e(t, topology{mode: tracedup, protocol: p, clientOptions: func(name string, o *sentry.ClientOptions) {
					if name == payment {
						tt.drop(o)
					}
				}})
				assert.Equal(t, map[what]int{serviceCallFailed: failing}, count(events))
				assert.Zero(t, res.stats[payment].Received, "payment's events never reached its transport")
				assert.Zero(t, res.stats[order].Cascades, "order was told nothing")
				assert.Equal(t, uint64(failing), res.stats[gateway].Cascades, "the gateway's errors are cascades of order's")
				assertBalanced(t, res)
			})
		}
	}
}

// TestSendCascades: with dedup.WithSendCascades the callers' errors are sent,
// tagged with the id of the payment event they stand behind, which the order
// service passes on to the gateway.
func TestSendCascades(t *testing.T) {
	res, events := e2e(t, topology{mode: tracedup, sendCascades: true})

	require.Len(t, events, 3*failing)
	rootOf := map[string]string{} // trace id -> payment event id
	for _, ev := range events {
		if whatOf(ev) == paymentDeclined {
			rootOf[ev.Event.Tags[sentryotel.TagTraceID]] = string(ev.Event.EventID)
		}
	}
	require.Len(t, rootOf, failing)
	for _, ev := range events {
		if whatOf(ev) == paymentDeclined {
			assert.NotContains(t, ev.Event.Tags, dedup.TagCascadeOf)
			continue
		}
		assert.Equal(t, rootOf[ev.Event.Tags[sentryotel.TagTraceID]], ev.Event.Tags[dedup.TagCascadeOf],
			"%s's cascade_of", whatOf(ev).service)
	}
	assert.Equal(t, uint64(failing), res.stats[order].Cascades)
	assert.Equal(t, uint64(failing), res.stats[gateway].Cascades)
	assert.Zero(t, res.stats[order].Suppressed, "sent, not suppressed")
	assertBalanced(t, res)
}

// TestModularMonolith: the three services in one process share one client
// with one plain dedup.Transport, with no cross-service protocol. It sees the
// whole cascade and sends the payment error, which names the two it stands
// for.
func TestModularMonolith(t *testing.T) {
	res, events := e2e(t, topology{mode: tracedup, monolith: true})

	require.Equal(t, []string{monolith}, res.order, "one Sentry client")
	require.Len(t, events, failing)
	for _, ev := range events {
		require.Equal(t, paymentDeclined, whatOf(ev), "event %s", ev.Raw)
		assert.Equal(t, "2", ev.Event.Tags[dedup.TagSuppressed])
		var raw struct {
			Contexts map[string]struct {
				Suppressed int `json:"suppressed"`
				Events     []struct {
					Service       string `json:"service"`
					ExceptionType string `json:"exception_type"`
				} `json:"events"`
			} `json:"contexts"`
		}
		require.NoError(t, json.Unmarshal(ev.Raw, &raw))
		d := raw.Contexts[dedup.ContextKey]
		assert.Equal(t, 2, d.Suppressed, "contexts.dedup in %s", ev.Raw)
		var named []what
		for _, e := range d.Events {
			named = append(named, what{e.Service, e.ExceptionType})
		}
		assert.ElementsMatch(t, []what{serviceCallFailed, downstreamError}, named)
	}
	s := res.stats[monolith]
	assert.Equal(t, uint64(3*failing), s.Received)
	assert.Equal(t, uint64(failing), s.Emitted)
	assert.Equal(t, uint64(2*failing), s.Suppressed)
	assert.Zero(t, s.Cascades, "no protocol in a monolith")
	assertBalanced(t, res)
}

func TestPlan(t *testing.T) {
	declined := func(load []checkout) (ids []int) {
		for _, c := range load {
			if c.Card == cardDeclined {
				ids = append(ids, c.Order)
			}
		}
		return ids
	}
	for _, tt := range []struct {
		n    int
		fail float64
		want int
	}{
		{0, 0.3, 0}, {10, 0, 0}, {10, 1, 10}, {1000, 0.3, 300}, {7, 0.5, 4},
	} {
		load := plan(tt.n, tt.fail, 1)
		assert.Len(t, load, tt.n)
		assert.Len(t, declined(load), tt.want, "plan(%d, %v)", tt.n, tt.fail)
	}
	assert.Equal(t, plan(100, 0.3, 7), plan(100, 0.3, 7), "same seed, same plan")
	assert.NotEqual(t, declined(plan(100, 0.3, 7)), declined(plan(100, 0.3, 8)), "another seed, other requests")
}

func TestIssueOf(t *testing.T) {
	ev := func(service, typ string, fingerprint ...string) *sentry.Event {
		return &sentry.Event{
			Tags:        map[string]string{sentryotel.TagServiceName: service},
			Exception:   []sentry.Exception{{Type: "*errors.errorString"}, {Type: typ}},
			Fingerprint: fingerprint,
		}
	}
	for _, tt := range []struct {
		a, b *sentry.Event
		same bool
	}{
		{ev(payment, "*main.PaymentDeclined"), ev(payment, "*main.PaymentDeclined"), true},
		{ev(payment, "*main.PaymentDeclined"), ev(order, "*main.PaymentDeclined"), false},
		{ev(payment, "*main.PaymentDeclined"), ev(payment, "*main.ServiceCallFailed"), false},
		{ev(payment, "*main.PaymentDeclined", "{{ default }}"), ev(payment, "*main.PaymentDeclined"), true},
		// {{ default }} plus a trace id splits the default group by trace...
		{ev(payment, "*main.PaymentDeclined", "{{ default }}", "t1"), ev(payment, "*main.PaymentDeclined", "{{default}}", "t2"), false},
		// ...and does not join different errors of one trace.
		{ev(payment, "*main.PaymentDeclined", "{{ default }}", "t1"), ev(order, "*main.ServiceCallFailed", "{{ default }}", "t1"), false},
		// A fingerprint of its own replaces the default grouping.
		{ev(payment, "*main.PaymentDeclined", "t1"), ev(order, "*main.ServiceCallFailed", "t1"), true},
	} {
		assert.Equal(t, tt.same, issueOf(tt.a) == issueOf(tt.b), "%q vs %q", issueOf(tt.a), issueOf(tt.b))
	}
}

// runCascade runs the program with args and returns its exit code and output.
func runCascade(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cells returns the table's cells in the row that starts with label.
func cells(t *testing.T, table, label string) []string {
	t.Helper()
	for line := range strings.Lines(table) {
		if rest, ok := strings.CutPrefix(line, label); ok && (rest == "" || rest[0] == ' ') {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no row %q in:\n%s", label, table)
	return nil
}

func TestRunPrintsTheTable(t *testing.T) {
	code, out, errOut := runCascade(t, "-requests", "40", "-fail", "0.25", "-workers", "3")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	for _, tt := range []struct {
		label string
		want  []string
	}{
		{"", []string{"baseline", "tracedup"}},
		{"requests", []string{"40", "40"}},
		{"failed requests", []string{"10", "10"}},
		{"errors captured by the services", []string{"30", "30"}},
		{"events sent to Sentry", []string{"30", "10"}},
		{"events Sentry received", []string{"30", "10"}},
		{"issues they would open", []string{"3", "1"}},
		{"root causes named correctly", []string{"10/10", "10/10"}},
		{"events that are cascades (noise)", []string{"20", "0"}},
		{"cascades suppressed", []string{"-", "20"}},
		{"cascades known from the header", []string{"-", "20"}},
		{"dedup received/emitted/suppressed", []string{"-", "30/10/20"}},
	} {
		assert.Equal(t, tt.want, cells(t, out, tt.label), "row %q", tt.label)
	}
	assert.Empty(t, errOut, "no progress for a short run")
}

// TestRunThroughTheRelay: the services run no deduplicator and send their
// errors and spans to a tracedup-relay, which forwards one event per failed
// request, the root cause, annotated with the two cascades it stands for.
func TestRunThroughTheRelay(t *testing.T) {
	code, out, errOut := runCascade(t, "-relay", "-requests", "40", "-fail", "0.25", "-workers", "3")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, []string{"baseline", "relay"}, cells(t, out, ""))
	assert.Equal(t, []string{"30", "10"}, cells(t, out, "events Sentry received"))
	assert.Equal(t, []string{"3", "1"}, cells(t, out, "issues they would open"))
	assert.Equal(t, []string{"10/10", "10/10"}, cells(t, out, "root causes named correctly"))
	assert.Equal(t, []string{"-", "30/10/20"}, cells(t, out, "dedup received/emitted/suppressed"))

	code, _, errOut = runCascade(t, "-relay", "-monolith")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "-relay")
}

// TestRunOverGRPC: the same table, the same result, with the services
// calling each other over gRPC, or over gRPC behind an HTTP gateway.
func TestRunOverGRPC(t *testing.T) {
	for _, p := range []string{"grpc", "mixed"} {
		t.Run(p, func(t *testing.T) {
			code, out, errOut := runCascade(t, "-protocol", p, "-requests", "40", "-fail", "0.25", "-workers", "3")
			require.Equal(t, 0, code, "stderr: %s", errOut)
			assert.Equal(t, []string{"10", "10"}, cells(t, out, "failed requests"))
			assert.Equal(t, []string{"30", "10"}, cells(t, out, "events Sentry received"))
			assert.Equal(t, []string{"10/10", "10/10"}, cells(t, out, "root causes named correctly"))
			assert.Equal(t, []string{"-", "20"}, cells(t, out, "cascades known from the header"))
		})
	}
}

func TestRunOneModeVerbose(t *testing.T) {
	code, out, errOut := runCascade(t, "-requests", "10", "-fail", "0.5", "-mode", "tracedup", "-v", "-send-cascades")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, []string{"tracedup"}, cells(t, out, ""))
	assert.Equal(t, []string{"15"}, cells(t, out, "events Sentry received"), "cascades sent, tagged")
	assert.Equal(t, []string{"0"}, cells(t, out, "cascades suppressed"))
	assert.Equal(t, []string{"10"}, cells(t, out, "cascades known from the header"))
	assert.Regexp(t, regexp.MustCompile(`(?m)^  order +dedup received 5, emitted 5, suppressed 0 \(cascades 5, late 0\), pending 0$`), out)
	assert.Contains(t, errOut, "tracedup: 10/10 requests", "progress with -v")
}

func TestRunMonolithAndNoAck(t *testing.T) {
	code, out, errOut := runCascade(t, "-requests", "10", "-fail", "1", "-mode", "tracedup", "-monolith")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, []string{"10"}, cells(t, out, "events Sentry received"))
	assert.Equal(t, []string{"20"}, cells(t, out, "cascades suppressed"), "in the window")
	assert.Equal(t, []string{"0"}, cells(t, out, "cascades known from the header"), "no header in a monolith")

	code, out, errOut = runCascade(t, "-requests", "10", "-fail", "1", "-mode", "tracedup", "-no-ack", "payment, order")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, []string{"30"}, cells(t, out, "events Sentry received"))
}

// TestRunToYourSentry: with -dsn the events go there, and the table says
// what was sent but cannot say what Sentry received.
func TestRunToYourSentry(t *testing.T) {
	fake, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { assert.NoError(t, fake.Close()) }()
	code, out, errOut := runCascade(t, "-requests", "10", "-fail", "1", "-dsn", fake.DSN())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, []string{"30", "10"}, cells(t, out, "events sent to Sentry"))
	assert.Equal(t, []string{"n/a", "n/a"}, cells(t, out, "events Sentry received"))
	assert.Equal(t, []string{"-", "20"}, cells(t, out, "cascades suppressed"))
	assert.Contains(t, out, "cannot read back")
	assert.Equal(t, 40, fake.Len(), "both runs went to the DSN")
}

func TestRunHelp(t *testing.T) {
	code, _, errOut := runCascade(t, "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "-send-cascades")
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"-mode", "sideways"},
		{"-fail", "1.5"},
		{"-fail", "NaN"},
		{"-requests", "-1"},
		{"-window", "0s"},
		{"-workers", "0"},
		{"-no-ack", "billing"},
		{"-protocol", "amqp"},
		{"extra"},
	} {
		code, _, errOut := runCascade(t, args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.NotEmpty(t, errOut, "%q", args)
	}
	for _, mode := range []string{"baseline", "tracedup"} {
		code, _, errOut := runCascade(t, "-requests", "1", "-mode", mode, "-dsn", "not a dsn")
		assert.Equal(t, 1, code, mode)
		assert.Contains(t, errOut, "cascade: "+mode+":", mode)
	}
}
