package rootcause_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/rootcause"
)

// scenario is one trace's errors and the EventIDs that are a right answer.
type scenario struct {
	name string
	errs []rootcause.Error
	want []string
}

// scenarios returns the traces the built-ins are scored on. Each service
// captures on its own span; "linked" traces have the callers' errors on the
// spans the callees' spans are children of, "gapped" ones have a client span
// without an error in between, as with otelhttp, so only time can order them.
func scenarios() []scenario {
	ms := time.Millisecond
	var out []scenario

	for _, linked := range []bool{true, false} {
		kind := "gapped"
		if linked {
			kind = "linked"
		}
		for _, order := range permutations(3) {
			errs := article(linked, 0)
			arrived := make([]rootcause.Error, 0, 3)
			names := make([]string, 0, 3)
			for _, i := range order {
				arrived = append(arrived, errs[i])
				names = append(names, errs[i].EventID)
			}
			out = append(out, scenario{
				name: fmt.Sprintf("article %s, arrival %s", kind, strings.Join(names, ",")),
				errs: arrived, want: []string{"payment"},
			})
		}
		for _, skew := range []time.Duration{-2 * time.Second, 2 * time.Second} {
			out = append(out, scenario{
				name: fmt.Sprintf("article %s, payment clock %v", kind, skew),
				errs: article(linked, skew), want: []string{"payment"},
			})
		}
	}

	orderBehind := article(true, 0)
	orderBehind[1].Timestamp = orderBehind[1].Timestamp.Add(-2 * time.Second)
	gatewayBehind := article(false, 0)
	gatewayBehind[0].Timestamp = gatewayBehind[0].Timestamp.Add(-2 * time.Second)
	out = append(out,
		scenario{name: "article linked, order clock -2s", errs: orderBehind, want: []string{"payment"}},
		scenario{name: "article gapped, gateway clock -2s", errs: gatewayBehind, want: []string{"payment"}},
	)

	out = append(out,
		scenario{
			name: "root span error only",
			errs: []rootcause.Error{typed(e("gateway", "gw", "", 0), "gateway", "*main.ValidationError")},
			want: []string{"gateway"},
		},
		scenario{
			name: "root span errors only, cause captured first",
			errs: []rootcause.Error{
				typed(e("handler", "gw", "", 2*ms), "gateway", "*main.HandlerError"),
				typed(e("validation", "gw", "", 1*ms), "gateway", "*main.ValidationError"),
			},
			want: []string{"validation"},
		},
	)

	for _, skew := range []time.Duration{0, -2 * time.Second} {
		errs := []rootcause.Error{
			typed(e("gateway", "gw", "", 30*ms+skew), "gateway", "*main.DownstreamError"),
			typed(e("inventory", "inv", "gw-client-1", 10*ms), "inventory", "*main.OutOfStock"),
			typed(e("order", "order", "gw-client-2", 15*ms), "order", "*main.DBTimeout"),
		}
		out = append(out, scenario{
			name: fmt.Sprintf("two unrelated leaf errors, gateway clock %v", skew),
			errs: errs, want: []string{"inventory", "order"},
		})
	}

	for _, skew := range []time.Duration{0, 2 * time.Second} {
		errs := []rootcause.Error{
			typed(e("gateway", "gw", "", 30*ms), "gateway", "*main.DownstreamError"),
			typed(e("handler", "payment", "order", 12*ms+skew), "payment", "*main.HandlerError"),
			typed(e("order", "order", "gw", 20*ms), "order", "*main.ServiceCallFailed"),
			typed(e("declined", "payment", "order", 10*ms+skew), "payment", "*main.PaymentDeclined"),
		}
		out = append(out, scenario{
			name: fmt.Sprintf("errors sharing a span, payment clock %v", skew),
			errs: errs, want: []string{"declined"},
		})
	}

	// The order service captures the failed call on its "charge" span and
	// again in its handler: the charge error's known chain is longer than
	// payment's, whose parent is a client span without an error.
	out = append(out, scenario{
		name: "wrapper deeper than the cause across a gap",
		errs: []rootcause.Error{
			typed(e("gateway", "gw", "", 30*ms), "gateway", "*main.DownstreamError"),
			typed(e("order", "order", "gw-client", 25*ms), "order", "*main.ServiceCallFailed"),
			typed(e("charge", "charge", "order", 20*ms), "order", "*main.ServiceCallFailed"),
			typed(e("payment", "payment", "charge-client", 10*ms), "payment", "*main.PaymentDeclined"),
		},
		want: []string{"payment"},
	})
	// The mirror image: payment captures on an inner span and in its
	// handler, and its clock is ahead. Depth is right where time is wrong.
	out = append(out, scenario{
		name: "cause deeper than the wrapper across a gap, payment clock 2s",
		errs: []rootcause.Error{
			typed(e("gateway", "gw", "", 30*ms), "gateway", "*main.DownstreamError"),
			typed(e("order", "order", "gw-client", 20*ms), "order", "*main.ServiceCallFailed"),
			typed(e("handler", "payment", "order-client", 2*time.Second+12*ms), "payment", "*main.HandlerError"),
			typed(e("card", "card", "payment", 2*time.Second+10*ms), "payment", "*main.CardDeclined"),
		},
		want: []string{"card"},
	})
	return out
}

// articleWrappers are the wrapper types of the article's services.
var articleWrappers = []string{"DownstreamError", "ServiceCallFailed", "HandlerError"}

// TestDefaultIsBest scores the built-ins that need no configuration on the
// scenarios and checks that Default scores strictly higher than every one
// that is not Default itself. Default is Deepest, so Deepest is not scored
// against it (the two would always tie and the comparison could never
// fail); that Default is Deepest is pinned by its description instead.
// DemoteTypes needs the application's wrapper types, so it is scored on top
// of Default but cannot be the default itself.
func TestDefaultIsBest(t *testing.T) {
	assert.Equal(t, rootcause.Describe(rootcause.Deepest()), rootcause.Describe(rootcause.Default()),
		"Default is Deepest; if that changes, score Deepest among the others below")
	const baseline, def = 1, 3
	strategies := []rootcause.Strategy{
		rootcause.Earliest(), rootcause.NonRootFirst(), rootcause.FirstOf(rootcause.NonRootFirst(), rootcause.Earliest()),
		rootcause.Default(),
	}
	configured := rootcause.DemoteTypes(rootcause.Default(), articleWrappers...)
	all := append(slices.Clone(strategies), configured)

	scs := scenarios()
	score := make([]int, len(all))
	wrong := make([][]string, len(all))
	for _, sc := range scs {
		for k, s := range all {
			if got := pick(s, sc.errs); slices.Contains(sc.want, got) {
				score[k]++
			} else {
				wrong[k] = append(wrong[k], fmt.Sprintf("%s: picked %s", sc.name, got))
			}
		}
	}

	t.Logf("scoreboard over %d scenarios:", len(scs))
	for k, s := range all {
		t.Logf("  %2d/%d  %s", score[k], len(scs), rootcause.Describe(s))
		for _, w := range wrong[k] {
			t.Logf("           wrong: %s", w)
		}
	}

	for k, s := range strategies {
		if k != def {
			assert.Greater(t, score[def], score[k], "Default scored %d, %s scored %d", score[def], rootcause.Describe(s), score[k])
		}
	}
	assert.Greater(t, score[def], score[baseline], "Default scored %d, no better than the article's %d", score[def], score[baseline])
	assert.GreaterOrEqual(t, score[len(all)-1], score[def], "DemoteTypes over Default scored %d, Default %d", score[len(all)-1], score[def])

	// Default's known limits: with a gap in the links it relies on depth and
	// time, and both can mislead. Pinned so that a change shows up here.
	assert.Equal(t, []string{
		"article gapped, payment clock 2s: picked order",
		"wrapper deeper than the cause across a gap: picked charge",
	}, wrong[def], "Default's wrong answers changed")
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}
