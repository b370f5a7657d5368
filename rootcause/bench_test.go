package rootcause_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/tracedup/tracedup/rootcause"
)

// largeTrace returns n errors of one trace: one on the root span and the
// others in a tree of fan-out 3, where two in three link to an error on
// their parent span and one in three has a parent without an error (a gap),
// every fifth shares its span with the one before, and the deeper errors are
// the earlier ones.
func largeTrace(n int) []rootcause.Error {
	errs := make([]rootcause.Error, n)
	errs[0] = typed(e("0", "span-0", "", time.Duration(n)*time.Millisecond), "gateway", "*main.DownstreamError")
	for i := 1; i < n; i++ {
		span := "span-" + strconv.Itoa(i)
		if i%5 == 0 {
			span = errs[i-1].SpanID
		}
		parent := errs[(i-1)/3].SpanID
		if i%3 == 0 {
			parent = "client-" + strconv.Itoa(i)
		}
		if span == errs[i-1].SpanID {
			parent = errs[i-1].ParentSpanID
		}
		errs[i] = typed(e(strconv.Itoa(i), span, parent, time.Duration(n-i)*time.Millisecond),
			"svc-"+strconv.Itoa(i%7), "*main.ServiceCallFailed")
	}
	return errs
}

func benchmarkStrategy(b *testing.B, s rootcause.Strategy, errs []rootcause.Error) {
	b.ReportAllocs()
	for b.Loop() {
		if i := s.RootCause(errs); i < 0 || i >= len(errs) {
			b.Fatalf("%s returned %d for %d errors", rootcause.Describe(s), i, len(errs))
		}
	}
}

func BenchmarkDeepest(b *testing.B) {
	b.Run("article-3", func(b *testing.B) { benchmarkStrategy(b, rootcause.Deepest(), article(true, 0)) })
	b.Run("tree-50", func(b *testing.B) { benchmarkStrategy(b, rootcause.Deepest(), largeTrace(50)) })
	b.Run("tree-200", func(b *testing.B) { benchmarkStrategy(b, rootcause.Deepest(), largeTrace(200)) })
}

func BenchmarkDefault(b *testing.B) {
	b.Run("article-3", func(b *testing.B) { benchmarkStrategy(b, rootcause.Default(), article(true, 0)) })
	b.Run("tree-50", func(b *testing.B) { benchmarkStrategy(b, rootcause.Default(), largeTrace(50)) })
}

func BenchmarkNonRootFirst(b *testing.B) {
	b.Run("tree-50", func(b *testing.B) { benchmarkStrategy(b, rootcause.NonRootFirst(), largeTrace(50)) })
}

func BenchmarkDemoteTypes(b *testing.B) {
	s := rootcause.DemoteTypes(nil, "DownstreamError", "ServiceCallFailed")
	b.Run("article-3", func(b *testing.B) { benchmarkStrategy(b, s, article(true, 0)) })
	b.Run("tree-50", func(b *testing.B) {
		errs := largeTrace(50)
		errs[17].ExceptionType = "*main.PaymentDeclined"
		errs[33].ExceptionType = "*main.PaymentDeclined"
		benchmarkStrategy(b, s, errs)
	})
}
