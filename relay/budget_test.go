package relay_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A storm of 1 MiB events (Sentry's limit) over as many traces, several
// times the relay's budget: into a relay whose upstream never answers (its
// queue fills, and SDKs are told to back off), and into one whose upstream
// takes everything while an hour's window holds every trace (the
// deduplicator's budget decides early). The live heap stays within the
// budget plus a small constant. Run in a child process (internal/storm), so
// that the heap measured is the relay's alone.
func TestBudgetHoldsWith1MiBEvents(t *testing.T) {
	const budget = 64 << 20
	// The child is built without the race detector, whatever this test
	// runs with: the heap it measures is the relay's.
	bin := filepath.Join(t.TempDir(), "storm")
	build := exec.Command("go", "build", "-o", bin, "./internal/storm")
	build.Env = append(os.Environ(), "GOFLAGS=")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, upstream := range []string{"stuck", "taking"} {
		t.Run(upstream, func(t *testing.T) {
			out, err := exec.Command(bin, strconv.Itoa(budget), upstream).CombinedOutput()
			require.NoError(t, err, "%s", out)
			var peakLive, events, refused int64
			for _, line := range strings.Split(string(out), "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "storm:"); ok {
					_, err := fmt.Sscanf(strings.TrimSpace(rest), "events=%d refused=%d peak_live=%d", &events, &refused, &peakLive)
					require.NoError(t, err, line)
				}
			}
			require.NotZero(t, events, "%s", out)
			t.Logf("%d events of 1 MiB sent, %d refused with 429; peak live heap %.1f MiB for a budget of %d MiB",
				events, refused, float64(peakLive)/(1<<20), budget>>20)
			// The budget, plus what is not the relay's: the request being
			// read and decoded (two events' worth), the HTTP stacks.
			assert.LessOrEqual(t, peakLive, int64(budget+16<<20), "peak live heap")
			assert.Greater(t, events*(1<<20), int64(4*budget), "the storm is several times the budget")
		})
	}
}

// TestStormChild is the child's storm; it does nothing unless the parent
// asked for it.
