package relay_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/relay"
)

// stormEnv, when set, makes the test binary run the storm of
// TestBudgetHoldsWith1MiBEvents itself and print what it measured.
const stormEnv = "TRACEDUP_RELAY_STORM"

// A storm of 1 MiB events (Sentry's limit) over as many traces, several
// times the relay's budget: into a relay whose upstream never answers (its
// queue fills, and SDKs are told to back off), and into one whose upstream
// takes everything while an hour's window holds every trace (the
// deduplicator's budget decides early). The live heap stays within the
// budget plus a small constant. Run in a child process, so that the heap
// measured is the relay's alone.
func TestBudgetHoldsWith1MiBEvents(t *testing.T) {
	if os.Getenv(stormEnv) != "" {
		t.Skip("the child's run")
	}
	const budget = 64 << 20
	for _, upstream := range []string{"stuck", "taking"} {
		t.Run(upstream, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestStormChild$", "-test.v")
			cmd.Env = append(os.Environ(), stormEnv+"="+strconv.Itoa(budget)+","+upstream)
			out, err := cmd.CombinedOutput()
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
func TestStormChild(t *testing.T) {
	v := os.Getenv(stormEnv)
	if v == "" {
		t.Skip("run by TestBudgetHoldsWith1MiBEvents")
	}
	b, upstream, _ := strings.Cut(v, ",")
	budget, err := strconv.ParseInt(b, 10, 64)
	require.NoError(t, err)

	stuck := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if upstream == "stuck" {
			<-stuck
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	defer close(stuck)
	u, _ := url.Parse(up.URL)
	srv := relay.NewServer(u, relay.Config{MaxBytes: budget, Window: time.Hour})
	defer func() {
		ctx, cancel := contextWithTimeout(time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	// One 1 MiB event, as a Sentry SDK's JSON: a big request body.
	body := strings.Repeat("x", 1<<20-512)
	runtime.GC()
	base := liveHeap()
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			l := liveHeap() - base
			mu.Lock()
			peak = max(peak, l)
			mu.Unlock()
		}
	}()
	const n = 400
	refused := 0
	for i := range n {
		ev, _ := json.Marshal(map[string]any{
			"event_id": fmt.Sprintf("%032x", i+1), "level": "error", "platform": "node",
			"exception": map[string]any{"values": []any{map[string]any{"type": "Error", "value": "boom"}}},
			"contexts":  map[string]any{"trace": map[string]any{"trace_id": fmt.Sprintf("%032x", i+1), "span_id": "00000000000000c3"}},
			"request":   map[string]any{"data": body},
		})
		env := fmt.Appendf(nil, "{\"event_id\":\"%032x\"}\n{\"type\":\"event\",\"length\":%d}\n", i+1, len(ev))
		env = append(append(env, ev...), '\n')
		req := httptest.NewRequest(http.MethodPost, "/api/1/envelope/", bytes.NewReader(env))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	close(stop)
	<-sampled
	mu.Lock()
	fmt.Printf("storm: events=%d refused=%d peak_live=%d\n", n, refused, peak)
	mu.Unlock()
	st := srv.Stats()
	d := st.Relay.Dedup
	require.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped, "%+v", d)
}

// liveHeap returns the heap the last collection marked live.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
