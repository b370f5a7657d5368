package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Config shapes a load. Probabilities are in [0, 1]; DefaultConfig gives
// values that exercise every case.
type Config struct {
	Requests int     `json:"requests"`
	Seed     uint64  `json:"seed"`
	Fail     float64 `json:"fail"` // requests in which a failure originates, at a service drawn uniformly
	Rate     float64 `json:"rate"` // requests per virtual second, arriving as a Poisson process

	Propagate   float64 `json:"propagate"`    // a caller whose call finally failed reports and fails; else it degrades gracefully and reports nothing
	Retry       float64 `json:"retry"`        // a call is retried, up to three attempts in all, when it fails
	Transient   float64 `json:"transient"`    // an origin fails only once, so a retry succeeds
	Second      float64 `json:"second"`       // a second independent origin in a failing request, on another branch of its call tree
	Siblings    float64 `json:"siblings"`     // an origin is two failures of one handler, on sibling spans (goroutines)
	OwnBug      float64 `json:"own_bug"`      // a caller that recovered from a failed call then fails on its own
	Info        float64 `json:"info"`         // a request logs an info message to Sentry at one of its services
	NoTrace     float64 `json:"no_trace"`     // a request's service captures an error outside any trace context
	Late        float64 `json:"late"`         // a failing request has a background failure reported after its trace was decided
	LateSymptom float64 `json:"late_symptom"` // a caller's report of a failed call comes after the trace was decided (a client timeout)

	Skew   time.Duration `json:"skew"`   // each service's clock is off by up to ± this much
	Hop    time.Duration `json:"hop"`    // the mean latency of one network hop
	Window time.Duration `json:"window"` // events this long after their trace's first are late
}

// DefaultConfig is the load of the evaluation's default run.
func DefaultConfig() Config {
	return Config{
		Requests: 2000, Seed: 1, Fail: 0.2, Rate: 20,
		Propagate: 0.8, Retry: 0.3, Transient: 0.4, Second: 0.1, Siblings: 0.05, OwnBug: 0.3,
		Info: 0.05, NoTrace: 0.02, Late: 0.03, LateSymptom: 0.02,
		Skew: 20 * time.Millisecond, Hop: 5 * time.Millisecond, Window: 5 * time.Second,
	}
}

// Role is what a captured event is to its incident.
type Role int

const (
	// Symptom is an error caused by another: a caller whose call failed.
	Symptom Role = iota
	// Origin is the failure itself, as the first of the incident's captured
	// events shows it: the failing service's own error, or where that
	// service only logs, the nearest caller's report of it.
	Origin
	// Repeat is the origin failing again, on a retry: same service, same
	// exception type.
	Repeat
	// Info is an info message; it belongs to no incident.
	Info
)

func (r Role) String() string {
	return [...]string{"symptom", "origin", "repeat", "info"}[r]
}

// Event is one event a service captures, and its ground truth.
type Event struct {
	ID       int    `json:"id"` // index in Plan.Events
	Request  int    `json:"request"`
	Service  string `json:"service"`
	Incident int    `json:"incident"` // index in Plan.Incidents; -1 for Info
	Role     Role   `json:"role"`
	Type     string `json:"type"` // the exception type Sentry shows, "" for Info
	Message  string `json:"message"`
	// Traced is false for an error captured outside any trace context.
	Traced bool `json:"traced"`
	// Late marks an event captured after its trace's other events were
	// decided on: more than Config.Window after them.
	Late bool `json:"late"`
	// At is when it is captured, on the true clock, from the load's start.
	At time.Duration `json:"at"`
	// Skew is how far the capturing service's clock is off: the event's
	// timestamp says At+Skew.
	Skew time.Duration `json:"skew"`
}

// Incident is one independent failure and the events that show it.
type Incident struct {
	ID      int      `json:"id"`
	Request int      `json:"request"`
	Origin  *Event   `json:"-"`
	Events  []*Event `json:"-"`
}

// Plan is a generated load: what every request does at every service, and
// the ground truth of every event it captures.
type Plan struct {
	Graph    *Graph
	Config   Config
	Requests []*Request
	// Events lists every event captured, Events[i].ID == i.
	Events []*Event
	// Incidents lists the incidents that have at least one captured event.
	Incidents []*Incident
}

// Request is one request to the graph's entry service.
type Request struct {
	ID    int
	Start time.Duration
	Root  *Node
}

// Node is one service's handling of one call (one server span). The driver
// runs its Steps in order and answers Status.
type Node struct {
	ID      int
	Service string
	Steps   []Step
	Status  int // 200, or 500 when the node failed
	// End is when the node answers, on the true clock.
	End time.Duration
}

// Step is one thing a handler does: call another service, or capture events.
type Step struct {
	// Call is the callee's handling of the call, nil if this step captures.
	Call *Node
	// Capture holds the events captured at this step: one, or two
	// captured at once on sibling spans (goroutines of one handler).
	Capture []*Event
}

// position is a place in the call tree that the graph gives every request.
type position struct {
	service  string
	logsOnly bool
	parent   *position
	children []*position
}

func (p *position) ancestorOf(q *position) bool {
	for ; q != nil; q = q.parent {
		if q == p {
			return true
		}
	}
	return false
}

// fault is an origin failure planted at a position for one request.
type fault struct {
	types     []string // one, or two for sibling failures
	incidents []int
	remaining int // executions left that fail
}

// generator holds the state of one Generate.
type generator struct {
	cfg       Config
	rng       *rand.Rand
	plan      *Plan
	skew      map[string]time.Duration
	positions []*position
	nextNode  int
	incidents int
	byInc     map[int][]*Event
	request   int
	faults    map[*position]*fault
	ownBugs   map[string]int // a service's own-bug incident in the request
	executed  []*Node
	nodeAt    map[*Node]time.Duration
}

// Generate makes the load cfg describes over g. The same g and cfg give the
// same plan.
func Generate(g *Graph, cfg Config) (*Plan, error) {
	if err := g.Check(); err != nil {
		return nil, err
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("workload: rate %v is not positive", cfg.Rate)
	}
	gen := &generator{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x7ace)),
		plan:  &Plan{Graph: g, Config: cfg},
		skew:  map[string]time.Duration{},
		byInc: map[int][]*Event{},
	}
	for _, s := range g.Services {
		gen.skew[s.Name] = time.Duration((gen.rng.Float64()*2 - 1) * float64(cfg.Skew))
	}
	gen.tree(g, g.Entry, nil)
	var t time.Duration
	for i := range cfg.Requests {
		t += time.Duration(gen.rng.ExpFloat64() / cfg.Rate * float64(time.Second))
		gen.plan.Requests = append(gen.plan.Requests, gen.request1(i, t))
	}
	gen.label()
	return gen.plan, nil
}

func (gen *generator) tree(g *Graph, name string, parent *position) *position {
	s := g.service(name)
	p := &position{service: name, logsOnly: s.LogsOnly, parent: parent}
	gen.positions = append(gen.positions, p)
	for _, c := range s.Calls {
		p.children = append(p.children, gen.tree(g, c, p))
	}
	return p
}

func (gen *generator) chance(p float64) bool { return gen.rng.Float64() < p }

func (gen *generator) newIncident() int {
	gen.incidents++
	return gen.incidents - 1
}

// hop is the latency of one network hop: the mean, give or take half.
func (gen *generator) hop() time.Duration {
	return time.Duration((0.5 + gen.rng.Float64()) * float64(gen.cfg.Hop))
}

// originTypes are the kinds of failure a service has of its own.
var originTypes = []string{"TimeoutError", "UnavailableError", "InvalidArgumentError", "InternalError"}

func (gen *generator) request1(id int, start time.Duration) *Request {
	gen.request = id
	gen.faults = map[*position]*fault{}
	gen.ownBugs = map[string]int{}
	gen.executed = nil
	gen.nodeAt = map[*Node]time.Duration{}
	failing := gen.chance(gen.cfg.Fail)
	if failing {
		first := gen.positions[gen.rng.IntN(len(gen.positions))]
		gen.plant(first)
		if gen.chance(gen.cfg.Second) {
			var apart []*position
			for _, p := range gen.positions {
				if !p.ancestorOf(first) && !first.ancestorOf(p) {
					apart = append(apart, p)
				}
			}
			if len(apart) > 0 {
				gen.plant(apart[gen.rng.IntN(len(apart))])
			}
		}
	}
	root, end, _ := gen.exec(gen.positions[0], start)
	r := &Request{ID: id, Start: start, Root: root}

	if gen.chance(gen.cfg.Info) {
		if n := gen.executed[gen.rng.IntN(len(gen.executed))]; !gen.logsOnly(n) {
			ev := gen.event(n.Service, -1, "", fmt.Sprintf("req %d: cache warmed", id), gen.nodeAt[n])
			ev.Role = Info
			prepend(n, ev)
		}
	}
	if gen.chance(gen.cfg.NoTrace) {
		n := gen.executed[gen.rng.IntN(len(gen.executed))]
		if !gen.logsOnly(n) {
			ev := gen.event(n.Service, gen.newIncident(), "*"+n.Service+".ConfigReloadError",
				fmt.Sprintf("req %d: reload config: permission denied", id), gen.nodeAt[n])
			ev.Traced = false
			prepend(n, ev)
		}
	}
	if failing && gen.chance(gen.cfg.Late) {
		n := gen.executed[gen.rng.IntN(len(gen.executed))]
		if !gen.logsOnly(n) {
			ev := gen.event(n.Service, gen.newIncident(), "*"+n.Service+".BackgroundJobError",
				fmt.Sprintf("req %d: audit log write failed", id), gen.late(end))
			ev.Late = true
			n.Steps = append(n.Steps, Step{Capture: []*Event{ev}})
		}
	}
	return r
}

func prepend(n *Node, ev *Event) {
	n.Steps = slices.Insert(n.Steps, 0, Step{Capture: []*Event{ev}})
}

func (gen *generator) logsOnly(n *Node) bool { return gen.plan.Graph.service(n.Service).LogsOnly }

// late is when an event of a request that ended at end arrives late: past
// the window, by up to two more windows.
func (gen *generator) late(end time.Duration) time.Duration {
	return end + gen.cfg.Window + time.Duration(gen.rng.Float64()*float64(2*gen.cfg.Window))
}

func (gen *generator) plant(p *position) {
	f := &fault{remaining: 1 << 30}
	if gen.chance(gen.cfg.Transient) {
		f.remaining = 1
	}
	n := 1
	if gen.chance(gen.cfg.Siblings) {
		n = 2
	}
	for _, k := range gen.rng.Perm(len(originTypes))[:n] {
		f.types = append(f.types, "*"+p.service+"."+originTypes[k])
		f.incidents = append(f.incidents, gen.newIncident())
	}
	gen.faults[p] = f
}

// event records a captured event; the caller adds it to a step.
func (gen *generator) event(service string, incident int, typ, msg string, at time.Duration) *Event {
	ev := &Event{
		ID: len(gen.plan.Events), Request: gen.request, Service: service, Incident: incident,
		Type: typ, Message: msg, Traced: true, At: at, Skew: gen.skew[service],
	}
	gen.plan.Events = append(gen.plan.Events, ev)
	if incident >= 0 {
		gen.byInc[incident] = append(gen.byInc[incident], ev)
	}
	return ev
}

// exec plans one execution of position p starting at t. It returns the node,
// when it answers, and the incident it failed with (-1 when it succeeded).
func (gen *generator) exec(p *position, t time.Duration) (*Node, time.Duration, int) {
	gen.nextNode++
	n := &Node{ID: gen.nextNode, Service: p.service, Status: 200}
	gen.executed = append(gen.executed, n)
	gen.nodeAt[n] = t
	t += gen.hop() / 2 // the handler's own work

	capture := func(evs ...*Event) { n.Steps = append(n.Steps, Step{Capture: evs}) }
	if f := gen.faults[p]; f != nil && f.remaining > 0 {
		f.remaining--
		if !p.logsOnly {
			var evs []*Event
			for i, typ := range f.types {
				evs = append(evs, gen.event(p.service, f.incidents[i], typ,
					fmt.Sprintf("req %d: %s", gen.request, typ[len(p.service)+2:]), t))
			}
			capture(evs...)
		}
		n.Status = 500
		n.End = t
		return n, t, f.incidents[0]
	}
	recovered := false
	for _, c := range p.children {
		attempts := 1
		if gen.chance(gen.cfg.Retry) {
			attempts = 3
		}
		for a := range attempts {
			child, end, inc := gen.exec(c, t+gen.hop())
			n.Steps = append(n.Steps, Step{Call: child})
			t = end + gen.hop()
			if inc < 0 {
				recovered = recovered || a > 0
				break
			}
			if a+1 < attempts {
				continue
			}
			if !gen.chance(gen.cfg.Propagate) {
				recovered = true // degrades gracefully: no report, carries on
				break
			}
			late := gen.chance(gen.cfg.LateSymptom)
			if !p.logsOnly {
				at := t
				if late {
					at = gen.late(t)
				}
				ev := gen.event(p.service, inc, "*"+p.service+".DownstreamError",
					fmt.Sprintf("req %d: call to %s failed", gen.request, c.service), at)
				ev.Late = late
				capture(ev)
			}
			n.Status = 500
			n.End = t
			return n, t, inc
		}
	}
	if recovered && gen.chance(gen.cfg.OwnBug) {
		// The same bug of one service hit again in one request (a caller
		// retried it) is a repeat of one incident, as the design counts
		// repeats: same service, same exception type.
		inc, again := gen.ownBugs[p.service]
		if !again {
			inc = gen.newIncident()
			gen.ownBugs[p.service] = inc
		}
		if !p.logsOnly {
			capture(gen.event(p.service, inc, "*"+p.service+".NilMapError",
				fmt.Sprintf("req %d: assignment to entry in nil map", gen.request), t))
		}
		n.Status = 500
		n.End = t
		return n, t, inc
	}
	n.End = t
	return n, t, -1
}

// label gives each incident's events their roles and renumbers the
// incidents that have events.
func (gen *generator) label() {
	ids := make([]int, 0, len(gen.byInc))
	for id := range gen.byInc {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, old := range ids {
		evs := gen.byInc[old]
		slices.SortStableFunc(evs, func(a, b *Event) int { return int(a.At - b.At) })
		inc := &Incident{ID: len(gen.plan.Incidents), Request: evs[0].Request, Origin: evs[0], Events: evs}
		for _, ev := range evs {
			ev.Incident = inc.ID
			switch {
			case ev == evs[0]:
				ev.Role = Origin
			case ev.Service == evs[0].Service && ev.Type == evs[0].Type:
				ev.Role = Repeat
			default:
				ev.Role = Symptom
			}
		}
		gen.plan.Incidents = append(gen.plan.Incidents, inc)
	}
}
