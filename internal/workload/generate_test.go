package workload

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quiet is a load with every probability zero: each request fails once, at
// a service drawn uniformly, and nothing else happens unless a test says so.
func quiet(requests int) Config {
	return Config{Requests: requests, Seed: 7, Fail: 1, Rate: 10, Hop: time.Millisecond, Window: 5 * time.Second}
}

// what is an event as the tests read it: service, role, type's last part.
type what struct {
	service string
	role    Role
	typ     string
}

func whats(evs []*Event) []what {
	var out []what
	for _, ev := range evs {
		typ := ev.Type
		if i := strings.LastIndexByte(typ, '.'); i >= 0 {
			typ = typ[i+1:]
		}
		out = append(out, what{ev.Service, ev.Role, typ})
	}
	return out
}

// byRequest groups a plan's events by request, in capture order.
func byRequest(p *Plan) map[int][]*Event {
	out := map[int][]*Event{}
	for _, ev := range p.Events {
		out[ev.Request] = append(out[ev.Request], ev)
	}
	return out
}

func originType(evs []*Event) string {
	for _, ev := range evs {
		if ev.Role == Origin {
			return whats([]*Event{ev})[0].typ
		}
	}
	return ""
}

// TestChainCascade: on a chain of three whose callers all propagate, a
// failure at s_k is one incident: its origin at s_k, a DownstreamError at
// each caller above it, in order, all on one trace.
func TestChainCascade(t *testing.T) {
	cfg := quiet(60)
	cfg.Propagate = 1
	p, err := Generate(Chain(3), cfg)
	require.NoError(t, err)
	require.Len(t, p.Incidents, 60, "one incident per request")
	seen := map[string]bool{}
	for req, evs := range byRequest(p) {
		o := evs[0]
		seen[o.Service] = true
		typ := originType(evs)
		want := map[string][]what{
			"s3": {{"s3", Origin, typ}, {"s2", Symptom, "DownstreamError"}, {"s1", Symptom, "DownstreamError"}},
			"s2": {{"s2", Origin, typ}, {"s1", Symptom, "DownstreamError"}},
			"s1": {{"s1", Origin, typ}},
		}[o.Service]
		assert.Equal(t, want, whats(evs), "request %d", req)
		for i, ev := range evs {
			assert.Equal(t, evs[0].Incident, ev.Incident, "request %d: one incident", req)
			assert.True(t, ev.Traced)
			assert.False(t, ev.Late)
			if i > 0 {
				assert.Greater(t, ev.At, evs[i-1].At, "request %d: a caller captures after its callee", req)
			}
		}
		assert.Same(t, evs[0], p.Incidents[evs[0].Incident].Origin)
	}
	assert.Len(t, seen, 3, "origins at every service of the chain")
}

// TestDegrade: a caller that degrades gracefully reports nothing; only the
// origin's own service does.
func TestDegrade(t *testing.T) {
	p, err := Generate(Chain(3), quiet(30))
	require.NoError(t, err)
	for req, evs := range byRequest(p) {
		assert.Len(t, evs, 1, "request %d", req)
		assert.Equal(t, Origin, evs[0].Role)
	}
}

// TestRetries: a failure that persists through three attempts is one
// incident, its origin and two repeats, and one report of the caller; a
// transient failure that a retry fixes is the origin alone; a caller that
// recovered and then hits its own bug has a second incident of its own.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transient float64
		ownBug    float64
		want      func(typ string) []what
	}{
		{"persistent", 0, 0, func(typ string) []what {
			return []what{{"s2", Origin, typ}, {"s2", Repeat, typ}, {"s2", Repeat, typ}, {"s1", Symptom, "DownstreamError"}}
		}},
		{"transient", 1, 0, func(typ string) []what { return []what{{"s2", Origin, typ}} }},
		{"transient then own bug", 1, 1, func(typ string) []what {
			return []what{{"s2", Origin, typ}, {"s1", Origin, "NilMapError"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quiet(40)
			cfg.Propagate, cfg.Retry, cfg.Transient, cfg.OwnBug = 1, 1, tc.transient, tc.ownBug
			p, err := Generate(Chain(2), cfg)
			require.NoError(t, err)
			n := 0
			for req, evs := range byRequest(p) {
				if evs[0].Service != "s2" {
					continue
				}
				n++
				assert.Equal(t, tc.want(originType(evs[:1])), whats(evs), "request %d", req)
				if tc.ownBug > 0 {
					assert.NotEqual(t, evs[0].Incident, evs[1].Incident, "the own bug is an incident of its own")
				} else {
					for _, ev := range evs {
						assert.Equal(t, evs[0].Incident, ev.Incident, "request %d: one incident", req)
					}
				}
			}
			assert.Positive(t, n, "requests failing at s2")
		})
	}
}

// TestLogsOnly: where the failing service only logs, the incident's origin
// is the first report of it, its caller's.
func TestLogsOnly(t *testing.T) {
	g := Chain(2)
	g.Services[1].LogsOnly = true
	cfg := quiet(30)
	cfg.Propagate = 1
	p, err := Generate(g, cfg)
	require.NoError(t, err)
	for req, evs := range byRequest(p) {
		require.Len(t, evs, 1, "request %d", req)
		assert.Equal(t, what{"s1", Origin, whats(evs)[0].typ}, whats(evs)[0])
	}
	assert.Len(t, p.Incidents, 30)
}

// TestTwoFailures: sibling failures of one handler are two incidents with
// two types, captured in one step; a second origin lands on another branch.
func TestTwoFailures(t *testing.T) {
	cfg := quiet(50)
	cfg.Siblings = 1
	p, err := Generate(FanOut(3), cfg)
	require.NoError(t, err)
	for req, evs := range byRequest(p) {
		require.Len(t, evs, 2, "request %d", req)
		assert.Equal(t, evs[0].Service, evs[1].Service)
		assert.NotEqual(t, evs[0].Type, evs[1].Type)
		assert.NotEqual(t, evs[0].Incident, evs[1].Incident)
		assert.Equal(t, Origin, evs[0].Role)
		assert.Equal(t, Origin, evs[1].Role)
	}

	cfg = quiet(50)
	cfg.Second = 1
	p, err = Generate(FanOut(3), cfg)
	require.NoError(t, err)
	two := 0
	for req, evs := range byRequest(p) {
		if len(evs) == 2 {
			two++
			assert.NotEqual(t, evs[0].Service, evs[1].Service, "request %d", req)
			assert.NotEqual(t, "gateway", evs[0].Service, "the gateway is an ancestor of every leaf")
		}
	}
	assert.Positive(t, two, "requests with two independent failures")
}

// TestExtras: info messages belong to no incident; errors without trace
// context and late ones are incidents of their own; late events come more
// than a window after their request's others.
func TestExtras(t *testing.T) {
	cfg := quiet(200)
	cfg.Info, cfg.NoTrace, cfg.Late, cfg.LateSymptom, cfg.Propagate = 1, 0.5, 1, 1, 1
	p, err := Generate(Chain(3), cfg)
	require.NoError(t, err)
	var info, noTrace, late int
	for _, ev := range p.Events {
		switch {
		case ev.Role == Info:
			info++
			assert.Equal(t, -1, ev.Incident)
		case !ev.Traced:
			noTrace++
			assert.Equal(t, Origin, ev.Role)
			assert.Len(t, p.Incidents[ev.Incident].Events, 1)
		case ev.Late:
			late++
			assert.Greater(t, ev.At, p.Requests[ev.Request].Start+cfg.Window)
		}
	}
	assert.Equal(t, 200, info)
	assert.Positive(t, noTrace)
	assert.Positive(t, late)
}

// TestReproducible: the same graph and config give the same plan; another
// seed another.
func TestReproducible(t *testing.T) {
	gen := func(seed uint64) string {
		cfg := DefaultConfig()
		cfg.Requests, cfg.Seed = 300, seed
		p, err := Generate(Boutique(), cfg)
		require.NoError(t, err)
		b, err := json.Marshal(p.Events)
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, gen(1), gen(1))
	assert.NotEqual(t, gen(1), gen(2))
}

func TestReadGraph(t *testing.T) {
	g, err := ReadGraph(strings.NewReader(`{"name": "mine", "entry": "a",
		"services": [{"name": "a", "calls": ["b"]}, {"name": "b", "logs_only": true}]}`))
	require.NoError(t, err)
	assert.Equal(t, "mine", g.Name)
	assert.True(t, g.service("b").LogsOnly)

	for _, bad := range []string{
		`{"entry": "a", "services": [{"name": "a", "calls": ["a"]}]}`,
		`{"entry": "a", "services": [{"name": "a", "calls": ["b"]}]}`,
		`{"entry": "z", "services": [{"name": "a"}]}`,
		`{"entry": "a", "services": [{"name": "a"}, {"name": "a"}]}`,
		`{"entry": "a", "services": [{"name": "a"}], "extra": 1}`,
	} {
		_, err := ReadGraph(strings.NewReader(bad))
		assert.Error(t, err, bad)
	}
	for _, g := range []*Graph{Boutique(), Chain(5), FanOut(8)} {
		assert.NoError(t, g.Check(), g.Name)
	}
	assert.Equal(t, []string{"checkout", "email"}, Boutique().Partial())
}
