package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracedup/tracedup/relay"
)

// benchPartitions is the topic's partitions in the Kafka benchmarks.
const benchPartitions = 6

// idEnvelope returns a function that makes the envelope of a real
// serialized sentry-go event with the event id and trace id of i, cheaply.
func idEnvelope(tb testing.TB) func(i int64) []byte {
	const idMark, traceMark = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "ffffffffffffffffffffffffffffffff"
	tpl := eventEnvelope(tb, captured(tb), idMark, traceMark, "00000000000000c3", "", "payment")
	return func(i int64) []byte {
		id := fmt.Appendf(nil, "%032x", i)
		env := bytes.ReplaceAll(tpl, []byte(idMark), id)
		return bytes.ReplaceAll(env, []byte(traceMark), id)
	}
}

// BenchmarkKafka measures relays sharing the work through kfake (in
// process, one broker, six partitions): SDK requests into an ingesting
// relay, in parallel (each answered once Kafka acknowledged), until every
// accepted event was decided by one of the deciding relays (a trace each,
// decided at the end of a 100 ms window) and received upstream. On one
// machine the deciding relays share its cores with kfake and the ingest
// stage: the numbers say what the protocol costs, not how a fleet scales.
func BenchmarkKafka(b *testing.B) {
	mk := idEnvelope(b)
	for _, deciders := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("deciders=%d", deciders), func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, relay.DefaultTopic))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			up := &sink{}
			us := httptest.NewServer(up)
			defer us.Close()
			u, _ := url.Parse(us.URL)
			kc := relay.KafkaConfig{Brokers: c.ListenAddrs(), Role: relay.RoleIngest}
			in, err := relay.NewKafkaServer(u, relay.Config{}, kc)
			if err != nil {
				b.Fatal(err)
			}
			servers := []*relay.Server{in}
			kc.Role = relay.RoleDecide
			for range deciders {
				d, err := relay.NewKafkaServer(u, relay.Config{Window: 100 * time.Millisecond, Grace: 50 * time.Millisecond}, kc)
				if err != nil {
					b.Fatal(err)
				}
				servers = append(servers, d)
			}
			defer func() {
				ctx, cancel := contextWithTimeout(30 * time.Second)
				defer cancel()
				for _, s := range servers {
					_ = s.Shutdown(ctx)
				}
			}()
			waitFor(b, 30*time.Second, func() bool {
				sum := 0
				for _, d := range servers[1:] {
					n := d.Stats().Kafka.Consumer.Partitions
					if n == 0 {
						return false
					}
					sum += n
				}
				return sum == benchPartitions
			})
			var next, accepted, busy atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/api/1/envelope/", bytes.NewReader(mk(next.Add(1))))
					req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
					rec := httptest.NewRecorder()
					in.ServeHTTP(rec, req)
					switch rec.Code {
					case http.StatusOK:
						accepted.Add(1)
					case http.StatusTooManyRequests:
						busy.Add(1)
					default:
						b.Errorf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
			waitFor(b, time.Minute, func() bool { return up.count() >= int(accepted.Load()) })
			b.StopTimer()
			b.ReportMetric(float64(accepted.Load())/b.Elapsed().Seconds(), "envelopes/s")
			b.ReportMetric(float64(busy.Load())/float64(b.N), "429/op")
		})
	}
}

// BenchmarkKafkaDelay measures the delay an event takes from the SDK's
// request to the upstream's, over loopback HTTP, through one relay in
// memory and through two relays and kfake (one ingesting, one deciding),
// for events that are forwarded at once (they name no trace): the
// difference is what Kafka adds to a report, besides the window.
func BenchmarkKafkaDelay(b *testing.B) {
	mk := idEnvelope(b)
	for _, mode := range []string{"memory", "kafka"} {
		b.Run(mode, func(b *testing.B) {
			s := &sink{arrived: map[string]time.Time{}}
			us := httptest.NewServer(s)
			defer us.Close()
			u, _ := url.Parse(us.URL)
			var servers []*relay.Server
			if mode == "memory" {
				servers = append(servers, relay.NewServer(u, relay.Config{}))
			} else {
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, relay.DefaultTopic))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				for _, role := range []relay.Role{relay.RoleIngest, relay.RoleDecide} {
					srv, err := relay.NewKafkaServer(u, relay.Config{}, relay.KafkaConfig{Brokers: c.ListenAddrs(), Role: role})
					if err != nil {
						b.Fatal(err)
					}
					servers = append(servers, srv)
				}
				waitFor(b, 30*time.Second, func() bool { return servers[1].Stats().Kafka.Consumer.Partitions == benchPartitions })
			}
			defer func() {
				ctx, cancel := contextWithTimeout(30 * time.Second)
				defer cancel()
				for _, srv := range servers {
					_ = srv.Shutdown(ctx)
				}
			}()
			rs := httptest.NewServer(servers[0])
			defer rs.Close()
			sent := map[string]time.Time{}
			var i int64
			b.ResetTimer()
			for b.Loop() {
				i++
				// No valid trace: forwarded as soon as the deciding relay
				// reads it.
				env := bytes.ReplaceAll(mk(i), fmt.Appendf(nil, `"trace_id":"%032x"`, i), []byte(`"trace_id":"not a trace id, 32 characters..."`))
				req, _ := http.NewRequest(http.MethodPost, rs.URL+"/api/1/envelope/", bytes.NewReader(env))
				req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
				sent[fmt.Sprintf("%032x", i)] = time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			waitFor(b, time.Minute, func() bool { return s.count() >= len(sent) })
			b.StopTimer()
			s.mu.Lock()
			defer s.mu.Unlock()
			var delays []time.Duration
			for id, at := range sent {
				if got, ok := s.arrived[id]; ok {
					delays = append(delays, got.Sub(at))
				}
			}
			slices.Sort(delays)
			b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// waitFor polls cond until it holds or d passes.
func waitFor(b *testing.B, d time.Duration, cond func() bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			b.Fatal("timed out")
		case <-tick.C:
		}
	}
}
