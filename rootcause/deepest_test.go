package rootcause_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/rootcause"
)

func TestDeepest(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		errs []rootcause.Error
		want string
	}{
		{
			name: "single error",
			errs: []rootcause.Error{e("a", "s1", "", 0)},
			want: "a",
		},
		{
			name: "linked chain, deepest arrives first",
			errs: []rootcause.Error{e("leaf", "c", "b", 3*ms), e("mid", "b", "a", 2*ms), e("top", "a", "", 1*ms)},
			want: "leaf",
		},
		{
			name: "linked chain beats a skewed clock",
			errs: []rootcause.Error{e("top", "a", "", 0), e("mid", "b", "a", -time.Hour), e("leaf", "c", "b", time.Hour)},
			want: "leaf",
		},
		{
			name: "a gap bridged by the ancestors beats a skewed clock",
			errs: []rootcause.Error{
				e("top", "a", "", 0),
				e("mid", "b", "a-client", -time.Hour),
				within(e("leaf", "c", "", time.Hour), "b-client", "b", "a-client", "a"),
			},
			want: "leaf",
		},
		{
			name: "root span error is every other error's ancestor",
			errs: []rootcause.Error{e("root", "r", "", -time.Second), e("x", "x", "unknown", 0)},
			want: "x",
		},
		{
			name: "only root span errors: earliest",
			errs: []rootcause.Error{e("late", "r", "", 2*ms), e("early", "r", "", 1*ms)},
			want: "early",
		},
		{
			name: "gap in the chain: falls back to time",
			errs: []rootcause.Error{e("order", "o", "gw-client", 2*ms), e("payment", "p", "order-client", 1*ms)},
			want: "payment",
		},
		{
			name: "greater known depth beats time",
			errs: []rootcause.Error{
				e("shallow", "s", "unknown1", 1*ms),
				e("deep", "d", "m", 3*ms), e("middle", "m", "unknown2", 2*ms),
			},
			want: "deep",
		},
		{
			name: "errors sharing a span: earliest of them",
			errs: []rootcause.Error{e("top", "a", "", 0), e("second", "b", "a", 2*ms), e("first", "b", "a", 1*ms)},
			want: "first",
		},
		{
			name: "errors sharing a span, same time: lowest index",
			errs: []rootcause.Error{e("top", "a", "", 0), e("one", "b", "a", 1*ms), e("two", "b", "a", 1*ms)},
			want: "one",
		},
		{
			name: "shared span is the ancestor of a deeper error",
			errs: []rootcause.Error{e("b1", "b", "a", 0), e("c", "c", "b", 5*ms), e("b2", "b", "a", 1*ms)},
			want: "c",
		},
		{
			name: "zero timestamp loses a tie",
			errs: []rootcause.Error{{EventID: "zero", SpanID: "x", ParentSpanID: "r"}, e("known", "y", "r", time.Hour)},
			want: "known",
		},
		{
			name: "self-parent span is no candidate",
			errs: []rootcause.Error{e("loop", "l", "l", 0), e("ok", "k", "r", 1*ms)},
			want: "ok",
		},
		{
			name: "every error in one cycle: deepest, then earliest",
			errs: []rootcause.Error{e("a", "a", "b", 2*ms), e("b", "b", "c", 1*ms), e("c", "c", "a", 3*ms)},
			want: "b",
		},
		{
			name: "chain into a cycle terminates",
			errs: []rootcause.Error{e("a", "a", "b", 0), e("b", "b", "a", 0), e("tail", "t", "a", 1*ms)},
			want: "tail",
		},
		{
			name: "no span ids at all: earliest",
			errs: []rootcause.Error{e("late", "", "", 2*ms), e("early", "", "", 1*ms)},
			want: "early",
		},
		{
			name: "error without a span id is still a candidate",
			errs: []rootcause.Error{e("nospan", "", "p", 1*ms), e("other", "o", "p", 2*ms)},
			want: "nospan",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := clone(tt.errs)
			got := pick(rootcause.Deepest(), tt.errs)
			assert.Equal(t, tt.want, got, "Deepest picked %q, want %q", got, tt.want)
			assert.Equal(t, before, tt.errs, "Deepest modified errs")
			ref := tt.errs[referenceDeepest(tt.errs)].EventID
			assert.Equal(t, tt.want, ref, "referenceDeepest picked %q, want %q", ref, tt.want)
		})
	}
}

func TestDeepestEmpty(t *testing.T) {
	assert.Equal(t, -1, rootcause.Deepest().RootCause(nil))
}

// TestDeepestMatchesReference checks Deepest against a direct transcription
// of its contract on random traces, small and large enough to use the map.
func TestDeepestMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range 3000 {
		n := 1 + r.IntN(12)
		if run%10 == 0 {
			n = 60 + r.IntN(40)
		}
		spans := 1 + r.IntN(n+2)
		errs := make([]rootcause.Error, n)
		for i := range errs {
			parent := ""
			if r.IntN(4) > 0 {
				parent = "s" + strconv.Itoa(r.IntN(spans+2))
			}
			errs[i] = e(strconv.Itoa(i), "s"+strconv.Itoa(r.IntN(spans)), parent, time.Duration(r.IntN(5))*time.Millisecond)
		}
		got := rootcause.Deepest().RootCause(errs)
		want := referenceDeepest(errs)
		require.Equal(t, want, got, "run %d: Deepest picked %d, reference %d, errs %v", run, got, want, links(errs))
	}
}

func FuzzDeepest(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{1, 2, 3, 2, 3, 1, 3, 0, 0})
	f.Add([]byte{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Three bytes per error: span, parent (0 = root span), timestamp.
		// Few distinct ids, so that links, shared spans and cycles are common.
		var errs []rootcause.Error
		for len(data) >= 3 && len(errs) < 100 {
			span := "s" + strconv.Itoa(int(data[0]%16))
			if data[0] >= 240 {
				span = ""
			}
			parent := ""
			if data[1]%17 != 0 {
				parent = "s" + strconv.Itoa(int(data[1]%17))
			}
			err := e(strconv.Itoa(len(errs)), span, parent, time.Duration(data[2])*time.Millisecond)
			if data[2] == 255 {
				err.Timestamp = time.Time{}
			}
			errs = append(errs, err)
			data = data[3:]
		}
		before := clone(errs)
		got := rootcause.Deepest().RootCause(errs)
		require.Equal(t, before, errs, "Deepest modified errs")
		if len(errs) == 0 {
			require.Equal(t, -1, got)
			return
		}
		require.True(t, got >= 0 && got < len(errs), "index %d out of range [0, %d)", got, len(errs))
		want := referenceDeepest(errs)
		require.Equal(t, want, got, "Deepest picked %d, reference %d, errs %v", got, want, links(errs))
	})
}

// referenceDeepest transcribes Deepest's contract as plainly as possible,
// with no care for speed.
func referenceDeepest(errs []rootcause.Error) int {
	if len(errs) == 0 {
		return -1
	}
	// With ancestors, an error's parent is the nearest of them on which an
	// error was captured.
	spans := map[string]bool{}
	for _, e := range errs {
		spans[e.SpanID] = e.SpanID != ""
	}
	errs = slices.Clone(errs)
	for i, e := range errs {
		if len(e.Ancestors) > 0 && e.Ancestors[0] == e.ParentSpanID {
			for _, a := range e.Ancestors {
				if spans[a] {
					errs[i].ParentSpanID = a
					break
				}
			}
		}
	}
	parentOf := map[string]string{} // span -> parent, first error on the span wins
	for _, e := range errs {
		if _, ok := parentOf[e.SpanID]; !ok && e.SpanID != "" {
			parentOf[e.SpanID] = e.ParentSpanID
		}
	}
	// chain returns the ancestor span ids of e, in order, without repeats.
	chain := func(e rootcause.Error) []string {
		var out []string
		seen := map[string]bool{}
		for p := e.ParentSpanID; p != "" && !seen[p]; {
			seen[p] = true
			out = append(out, p)
			next, known := parentOf[p]
			if !known {
				break
			}
			p = next
		}
		return out
	}
	anyNonRoot := false
	for _, e := range errs {
		anyNonRoot = anyNonRoot || !e.IsRootSpan()
	}
	chains := make([][]string, len(errs))
	reached := map[string]bool{}
	for i, e := range errs {
		chains[i] = chain(e)
		for _, s := range chains[i] {
			reached[s] = true
		}
	}
	isAncestor := func(a rootcause.Error) bool {
		return a.IsRootSpan() && anyNonRoot || a.SpanID != "" && reached[a.SpanID]
	}
	best := func(skipAncestors bool) int {
		b := -1
		for i, e := range errs {
			if skipAncestors && isAncestor(e) {
				continue
			}
			if b < 0 {
				b = i
				continue
			}
			d, bd := len(chains[i]), len(chains[b])
			et, bt := e.Timestamp, errs[b].Timestamp
			earlier := !et.IsZero() && (bt.IsZero() || et.Before(bt))
			if d > bd || d == bd && earlier {
				b = i
			}
		}
		return b
	}
	if b := best(true); b >= 0 {
		return b
	}
	return best(false)
}

func clone(errs []rootcause.Error) []rootcause.Error {
	if errs == nil {
		return nil
	}
	return append([]rootcause.Error{}, errs...)
}

// links formats errs as "span<-parent@ms" for failure messages.
func links(errs []rootcause.Error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = fmt.Sprintf("%s<-%q@%d", e.SpanID, e.ParentSpanID, e.Timestamp.Sub(t0).Milliseconds())
	}
	return out
}
