package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

// fleet is relays that share the work through one kfake cluster, behind a
// round-robin load balancer as SDKs would reach them: no request carries
// its trace to the balancer.
type fleet struct {
	t        *testing.T
	kafka    *kfake.Cluster
	upstream *fakesentry.Server
	cfg      relay.Config
	kc       relay.KafkaConfig

	mu      sync.Mutex
	members []*member
	next    int
	by      map[string]map[string]bool // event id -> the relays that forwarded it

	lb *httptest.Server
}

// member is one relay of a fleet, with its own path upstream.
type member struct {
	name string
	srv  *relay.Server
	http *httptest.Server
	gate *httptest.Server
	cut  atomic.Bool // crashed: what it still sends never arrives
	dead bool
}

func newFleet(t *testing.T, partitions int32, cfg relay.Config, kc relay.KafkaConfig) *fleet {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, relay.DefaultTopic))
	require.NoError(t, err)
	up, err := fakesentry.New()
	require.NoError(t, err)
	f := &fleet{t: t, kafka: c, upstream: up, cfg: cfg, kc: kc, by: map[string]map[string]bool{}}
	kc.Brokers = c.ListenAddrs()
	f.kc = kc
	f.lb = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for {
			m := f.members[f.next%len(f.members)]
			f.next++
			if !m.dead {
				u, _ := url.Parse(m.http.URL)
				pr.SetURL(u)
				return
			}
		}
	}})
	t.Cleanup(func() {
		f.lb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, m := range f.members {
			m.http.Close()
			if m.dead {
				dead, stop := context.WithCancel(ctx)
				stop()
				_ = m.srv.Shutdown(dead)
			} else {
				_ = m.srv.Shutdown(ctx)
			}
			m.gate.Close()
		}
		c.Close()
		_ = up.Close()
	})
	return f
}

// add starts one more relay.
func (f *fleet) add(name string) *member {
	f.t.Helper()
	m := &member{name: name}
	target, err := url.Parse(f.upstream.URL())
	require.NoError(f.t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	m.gate = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if m.cut.Load() {
			return // lost with the crashed relay
		}
		line, _, _ := bytes.Cut(body, []byte{'\n'})
		var h struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(line, &h) == nil && h.EventID != "" {
			f.mu.Lock()
			if f.by[h.EventID] == nil {
				f.by[h.EventID] = map[string]bool{}
			}
			f.by[h.EventID][name] = true
			f.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	gu, err := url.Parse(m.gate.URL)
	require.NoError(f.t, err)
	m.srv, err = relay.NewKafkaServer(gu, f.cfg, f.kc)
	require.NoError(f.t, err)
	m.http = httptest.NewServer(m.srv)
	f.mu.Lock()
	f.members = append(f.members, m)
	f.mu.Unlock()
	return m
}

// crash stops m as a crash would: it accepts nothing more, commits nothing
// more, and nothing it still holds reaches upstream.
func (f *fleet) crash(m *member) {
	m.cut.Store(true)
	f.mu.Lock()
	m.dead = true
	f.mu.Unlock()
	m.srv.CrashKafka()
}

// balanced waits until the live relays own every partition between them,
// each some.
func (f *fleet) balanced(partitions int) {
	f.t.Helper()
	eventually(f.t, 30*time.Second, func() bool {
		sum := 0
		for _, m := range f.live() {
			n := m.srv.Stats().Kafka.Consumer.Partitions
			if n == 0 {
				return false
			}
			sum += n
		}
		return sum == partitions
	}, "the group never balanced")
}

func (f *fleet) live() []*member {
	f.mu.Lock()
	defer f.mu.Unlock()
	var live []*member
	for _, m := range f.members {
		if !m.dead {
			live = append(live, m)
		}
	}
	return live
}

// outcome is what upstream received, by trace.
type outcome struct {
	payments   int // traces whose payment error arrived
	events     int // events that arrived
	duplicates int // arrivals of an event id that had arrived before
	cascades   int // events other than a payment's: cascades not collapsed
	twoRelays  int // traces forwarded by more than one relay
	annotated  int // payment errors that stand for the two others
}

func (f *fleet) outcome() outcome {
	var o outcome
	seen := map[string]bool{}
	paid := map[string]bool{}
	relaysOf := map[string]map[string]bool{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.upstream.Events() {
		e := ev.Event
		o.events++
		if seen[string(e.EventID)] {
			o.duplicates++
			continue
		}
		seen[string(e.EventID)] = true
		tid, _ := e.Contexts["trace"]["trace_id"].(string)
		if relaysOf[tid] == nil {
			relaysOf[tid] = map[string]bool{}
		}
		for r := range f.by[string(e.EventID)] {
			relaysOf[tid][r] = true
		}
		if len(e.Exception) == 0 || e.Exception[len(e.Exception)-1].Value != "card declined" {
			o.cascades++
			continue
		}
		if !paid[tid] {
			paid[tid] = true
			o.payments++
		}
		if e.Tags[dedup.TagSuppressed] == "2" {
			o.annotated++
		}
	}
	for _, rs := range relaysOf {
		if len(rs) > 1 {
			o.twoRelays++
		}
	}
	return o
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		<-tick.C
	}
}

func (f *fleet) storm(t *testing.T, s *shop, n int, midway func()) {
	for i := range n {
		if i == n/2 && midway != nil {
			midway()
		}
		s.request(t)
	}
	for _, c := range s.clients {
		require.True(t, c.Flush(10*time.Second))
	}
}

func (f *fleet) stats() string {
	var b strings.Builder
	for _, m := range f.members {
		st := m.srv.Stats()
		fmt.Fprintf(&b, "%s: dedup %+v kafka produce %+v consume %+v\n", m.name, st.Relay.Dedup, st.Kafka.Produce, st.Kafka.Consumer)
	}
	return b.String()
}

// Three relays behind a round-robin balancer, each ingesting and deciding:
// the three-service cascade collapses as with one relay, N failing requests
// reaching Sentry as N payment errors, each annotated with the two errors it
// stands for, each trace decided by the one relay that owns its partition.
func TestKafkaThreeRelaysCollapseAsOne(t *testing.T) {
	const partitions, requests = 6, 12
	f := newFleet(t, partitions, relay.Config{Window: time.Hour}, relay.KafkaConfig{})
	for _, name := range []string{"a", "b", "c"} {
		f.add(name)
	}
	f.balanced(partitions)
	s := startShop(t, f.lb.URL, shopOptions{})
	f.storm(t, s, requests, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := f.upstream.WaitFor(ctx, requests)
	require.NoError(t, err, f.stats())
	for _, m := range f.members {
		require.True(t, m.srv.Flush(ctx))
	}
	o := f.outcome()
	assert.Equal(t, outcome{payments: requests, events: requests, annotated: requests}, o, f.stats())
	var ended, received uint64
	for _, m := range f.members {
		d := m.srv.Stats().Relay.Dedup
		ended += d.RequestEnded
		received += d.Received
		assert.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped)
		assert.NotZero(t, m.srv.Stats().Kafka.Produce.Events, "every relay ingests")
	}
	assert.Equal(t, uint64(3*requests), received, "each event decided once")
	assert.Equal(t, uint64(requests), ended, "decided when the trace's spans arrived, as with one relay")
}

// A relay crashes in the middle of a storm (its consumer stops with no last
// checkpoint; nothing it still holds reaches upstream): its partitions move
// to the others, which read on from its last commit, and every request's
// payment error still reaches Sentry, at least once.
func TestKafkaRelayCrashedMidStormLosesNothing(t *testing.T) {
	const partitions, requests = 6, 30
	f := newFleet(t, partitions, relay.Config{Window: 3 * time.Second, Grace: 300 * time.Millisecond},
		relay.KafkaConfig{CommitInterval: 200 * time.Millisecond})
	var victim *member
	var held uint64
	for _, name := range []string{"a", "b", "c"} {
		victim = f.add(name)
	}
	f.balanced(partitions)
	s := startShop(t, f.lb.URL, shopOptions{})
	f.storm(t, s, requests, func() {
		// The victim has committed, and holds traces it has not decided
		// from records it has not committed.
		eventually(t, 10*time.Second, func() bool {
			st := victim.srv.Stats()
			held = st.Relay.Dedup.Pending
			return st.Kafka.Consumer.Commits > 0 && st.Kafka.Consumer.Uncommitted > 0 && held > 0
		}, "the victim never held undecided traces past a commit")
		f.crash(victim)
	})
	f.balanced(partitions)
	eventually(t, 30*time.Second, func() bool { return f.outcome().payments == requests },
		"payment errors lost: %+v\n%s", f.outcome(), f.stats())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range f.live() {
		require.True(t, m.srv.Flush(ctx))
	}
	o := f.outcome()
	t.Logf("after a crash: %+v (victim %s held %d events: %+v)", o, victim.name, held, victim.srv.Stats().Kafka.Consumer)
	assert.Equal(t, requests, o.payments)
	assert.Positive(t, victim.srv.Stats().Kafka.Consumer.Events, "the victim decided some traces")
}

// A relay joins in the middle of a storm: it takes partitions (the others
// checkpoint before they give them up), nothing is lost and nothing is
// decided twice. (A variant that did not wait for the group to balance
// failed without the checkpoint on revocation, 4 to 8 of 30 events coming
// twice from two relays; this one, where the new relay surely decides its
// share, has not been seen to: TestConsumerCommitsOnlyWhatWasHandedUpstream
// is the commit protocol's test.)
func TestKafkaRelayAddedMidStormLosesNothing(t *testing.T) {
	const partitions, requests = 6, 30
	f := newFleet(t, partitions, relay.Config{Window: 3 * time.Second, Grace: 300 * time.Millisecond}, relay.KafkaConfig{})
	f.add("a")
	f.add("b")
	f.balanced(partitions)
	s := startShop(t, f.lb.URL, shopOptions{})
	var late *member
	f.storm(t, s, requests, func() {
		// The first half's traces are held (spans still coming, the grace
		// not over) while their partitions move.
		late = f.add("c")
		f.balanced(partitions)
	})
	f.balanced(partitions)
	eventually(t, 30*time.Second, func() bool { return f.outcome().payments == requests },
		"payment errors lost: %+v\n%s", f.outcome(), f.stats())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range f.live() {
		require.True(t, m.srv.Flush(ctx))
	}
	o := f.outcome()
	t.Logf("with a relay added: %+v\n%s", o, f.stats())
	assert.Equal(t, requests, o.payments)
	// A handoff, not a crash: the old owners committed what they decided
	// before letting go, so nothing is decided twice.
	assert.Zero(t, o.duplicates, "%+v", o)
	assert.Zero(t, o.twoRelays, "%+v", o)
	assert.Positive(t, late.srv.Stats().Kafka.Consumer.Partitions)
	assert.Positive(t, late.srv.Stats().Kafka.Consumer.Events, "the new relay decides its share")
	var revoked uint64
	for _, m := range f.members {
		revoked += m.srv.Stats().Kafka.Consumer.Revoked
	}
	assert.Positive(t, revoked, "partitions moved")
}

// With Kafka down, an SDK is told to back off (429 with Retry-After) within
// the produce timeout, and the producer holds no more than its bound.
func TestKafkaUnavailableTellsSDKsToBackOff(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, relay.DefaultTopic))
	require.NoError(t, err)
	addrs := c.ListenAddrs()
	c.Close()
	up := httptest.NewServer(&sink{})
	defer up.Close()
	u, _ := url.Parse(up.URL)
	const budget = 2 << 20 // the producer's bound: 64 KiB, nine events
	srv, err := relay.NewKafkaServer(u, relay.Config{MaxBytes: budget}, relay.KafkaConfig{Brokers: addrs, Role: relay.RoleIngest,
		ProduceTimeout: 300 * time.Millisecond, Options: []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond })}})
	require.NoError(t, err)
	rs := httptest.NewServer(srv)
	defer rs.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	tpl := captured(t)
	const requests = 40
	var wg sync.WaitGroup
	codes := make([]int, requests)
	retryAfter := make([]string, requests)
	maxBuffered := atomic.Int64{}
	for i := range requests {
		wg.Go(func() {
			env := eventEnvelope(t, tpl, fmt.Sprintf("%032x", i+1), fmt.Sprintf("%032x", i+1), "00000000000000c3", "", "payment")
			req, _ := http.NewRequest(http.MethodPost, rs.URL+"/api/1/envelope/", bytes.NewReader(env))
			req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			assert.Less(t, time.Since(start), 5*time.Second, "answered within the produce timeout")
			codes[i], retryAfter[i] = resp.StatusCode, resp.Header.Get("Retry-After")
			if b := srv.Stats().Kafka.Produce.BufferedBytes; b > maxBuffered.Load() {
				maxBuffered.Store(b)
			}
		})
	}
	wg.Wait()
	for i := range requests {
		assert.Equal(t, http.StatusTooManyRequests, codes[i])
		assert.NotEmpty(t, retryAfter[i])
	}
	// Those that reached the sink were refused by it; the others, by the
	// budget of bodies in flight while the sink's requests waited.
	st := srv.Stats()
	assert.Positive(t, st.Kafka.Produce.Refused, "%+v", st.Kafka.Produce)
	assert.Equal(t, st.Kafka.Produce.Refused, st.Ingest.Rejected["sink_full"], "%+v", st.Ingest.Rejected)
	var rejected uint64
	for _, n := range st.Ingest.Rejected {
		rejected += n
	}
	assert.Equal(t, uint64(requests), rejected, "%+v", st.Ingest.Rejected)
	assert.Zero(t, st.Kafka.Produce.Events)
	assert.LessOrEqual(t, maxBuffered.Load(), int64(budget/32))
	assert.Zero(t, st.Relay.Dedup.Received, "nothing decided here")
}

// A deciding-only relay refuses SDKs (they must go to an ingesting relay)
// and still answers its health and status.
func TestKafkaDecideOnlyRefusesSDKs(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, relay.DefaultTopic))
	require.NoError(t, err)
	defer c.Close()
	up := httptest.NewServer(&sink{})
	defer up.Close()
	u, _ := url.Parse(up.URL)
	srv, err := relay.NewKafkaServer(u, relay.Config{}, relay.KafkaConfig{Brokers: c.ListenAddrs(), Role: relay.RoleDecide})
	require.NoError(t, err)
	defer func() { _ = srv.Shutdown(context.Background()) }()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/1/envelope/", http.StatusServiceUnavailable},
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/status", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}\n")))
		assert.Equal(t, tc.want, rec.Code, "%s %s: %s", tc.method, tc.path, rec.Body)
	}
	assert.Nil(t, srv.Stats().Kafka.Produce)
	assert.NotNil(t, srv.Stats().Kafka.Consumer)
}
