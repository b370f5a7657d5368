package scenario

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/dedup"
)

// Requests is how many requests Run sends into each scenario's system.
const Requests = 5

// Run runs each scenario under the wiring newWiring returns for it, for
// Requests requests, checks that every origin arrives as an event of its
// own and nothing else does but what the scenario expects of that wiring,
// and logs the table of recall and precision (go test -run TestScenarios
// -v). newWiring is called once per scenario, with the scenario's options.
func Run(t *testing.T, newWiring func(t testing.TB, options ...dedup.Option) Wiring) {
	var table strings.Builder
	name := ""
	fmt.Fprintf(&table, "\n%-76s %8s %6s %9s %9s\n", "scenario", "captured", "sent", "recall", "precision")
	for _, sc := range Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			w := newWiring(t, sc.Options...)
			name = w.Name()
			expect := sc.For(name)
			sys := NewSystem(w)
			entry, path := sc.Build(t, sys)
			var want []string
			for range Requests {
				sys.Request(t, entry, path)
				want = append(want, sc.Origins...)
				want = append(want, expect.Noise...)
			}
			want = slices.DeleteFunc(want, func(s string) bool { return slices.Contains(expect.Hidden, s) })
			got, captured := sys.sent(t)
			slices.Sort(want)
			assert.Equal(t, want, got, "what reached Sentry through the %s", name)

			recall, precision := Score(got, sc.Origins, Requests)
			fmt.Fprintf(&table, "%-76s %8d %6d %8.0f%% %8.0f%%\n", sc.Name, captured, len(got), 100*recall, 100*precision)
		})
	}
	t.Logf("through the %s:%s", name, table.String())
}

// Score returns the fraction of origins that arrived (recall) and of the
// error events that arrived that are origins (precision), over n requests.
// Messages are no errors: they count in neither.
func Score(got, origins []string, n int) (recall, precision float64) {
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
