// Command storm sends a storm of 1 MiB events through a relay whose
// upstream is stuck or takes everything, and prints the peak live heap: the
// child process of relay's TestBudgetHoldsWith1MiBEvents, built without the
// race detector, so that the heap it measures is the relay's alone.
//
// Usage: storm BUDGET stuck|taking
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tracedup/tracedup/relay"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: storm BUDGET stuck|taking")
		os.Exit(2)
	}
	budget, err := strconv.ParseInt(os.Args[1], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	upstream := os.Args[2]

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
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
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
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
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
			fmt.Fprintf(os.Stderr, "status %d: %s\n", rec.Code, rec.Body)
			os.Exit(1)
		}
	}
	close(stop)
	<-sampled
	d := srv.Stats().Relay.Dedup
	if d.Received != d.Emitted+d.Suppressed+d.Pending+d.Dropped {
		fmt.Fprintf(os.Stderr, "the counters do not add up: %+v\n", d)
		os.Exit(1)
	}
	mu.Lock()
	fmt.Printf("storm: events=%d refused=%d peak_live=%d\n", n, refused, peak)
	mu.Unlock()
}

// liveHeap returns the heap the last collection marked live.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
