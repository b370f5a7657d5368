package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Graph is a service call graph: an entry service that receives every
// request, and for each service the services it calls, in the order it calls
// them. It must be acyclic.
type Graph struct {
	Name     string    `json:"name"`
	Entry    string    `json:"entry"`
	Services []Service `json:"services"`
}

// Service is one node of a Graph.
type Service struct {
	Name string `json:"name"`
	// Calls lists the services called for every request, in order.
	Calls []string `json:"calls,omitempty"`
	// LogsOnly marks a service that logs its errors and never reports them
	// to Sentry.
	LogsOnly bool `json:"logs_only,omitempty"`
}

// Boutique is the call graph of Google's Online Boutique demo. Email only
// logs its errors, as its Python original does.
func Boutique() *Graph {
	return &Graph{Name: "boutique", Entry: "frontend", Services: []Service{
		{Name: "frontend", Calls: []string{"checkout", "cart", "productcatalog", "currency", "recommendation", "ad", "shipping"}},
		{Name: "checkout", Calls: []string{"cart", "productcatalog", "currency", "shipping", "payment", "email"}},
		{Name: "recommendation", Calls: []string{"productcatalog"}},
		{Name: "cart"}, {Name: "productcatalog"}, {Name: "currency"}, {Name: "ad"},
		{Name: "shipping"}, {Name: "payment"}, {Name: "email", LogsOnly: true},
	}}
}

// Chain is a chain of n services, s1 calling s2 calling ... sn.
func Chain(n int) *Graph {
	g := &Graph{Name: fmt.Sprintf("chain%d", n), Entry: "s1"}
	for i := 1; i <= n; i++ {
		s := Service{Name: fmt.Sprintf("s%d", i)}
		if i < n {
			s.Calls = []string{fmt.Sprintf("s%d", i+1)}
		}
		g.Services = append(g.Services, s)
	}
	return g
}

// FanOut is a gateway calling n leaf services.
func FanOut(n int) *Graph {
	g := &Graph{Name: fmt.Sprintf("fanout%d", n), Entry: "gateway"}
	gw := Service{Name: "gateway"}
	var leaves []Service
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("leaf%d", i)
		gw.Calls = append(gw.Calls, name)
		leaves = append(leaves, Service{Name: name})
	}
	g.Services = append([]Service{gw}, leaves...)
	return g
}

// ReadGraph reads a Graph as JSON, in the shape of Graph's fields, and
// checks it.
func ReadGraph(r io.Reader) (*Graph, error) {
	var g Graph
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	if err := g.Check(); err != nil {
		return nil, err
	}
	return &g, nil
}

// LoadGraph names a built-in graph (boutique, chain, fanout) or a JSON file.
func LoadGraph(name string) (*Graph, error) {
	switch name {
	case "boutique":
		return Boutique(), nil
	case "chain":
		return Chain(5), nil
	case "fanout":
		return FanOut(8), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadGraph(f)
}

// Check reports whether g is usable: services named once, calls to known
// services, an entry among them, no cycle.
func (g *Graph) Check() error {
	if len(g.Services) == 0 {
		return errors.New("graph: no services")
	}
	byName := map[string]*Service{}
	for i := range g.Services {
		s := &g.Services[i]
		if s.Name == "" {
			return errors.New("graph: a service has no name")
		}
		if byName[s.Name] != nil {
			return fmt.Errorf("graph: service %q named twice", s.Name)
		}
		byName[s.Name] = s
	}
	if byName[g.Entry] == nil {
		return fmt.Errorf("graph: entry %q is not a service", g.Entry)
	}
	// Depth-first search for a cycle: 1 = on the path, 2 = done.
	state := map[string]int{}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("graph: cycle %v", append(path, name))
		case 2:
			return nil
		}
		state[name] = 1
		for _, c := range byName[name].Calls {
			if byName[c] == nil {
				return fmt.Errorf("graph: %s calls unknown service %q", name, c)
			}
			if err := visit(c, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		return nil
	}
	for _, s := range g.Services {
		if err := visit(s.Name, nil); err != nil {
			return err
		}
	}
	return nil
}

// service returns the named service; the graph has been checked.
func (g *Graph) service(name string) *Service {
	i := slices.IndexFunc(g.Services, func(s Service) bool { return s.Name == name })
	return &g.Services[i]
}

// Partial names the services that a partial roll-out leaves without
// tracedup: the first service that both calls and is called (a service in
// the middle), and the last service that calls nobody.
func (g *Graph) Partial() []string {
	var middle, leaf string
	for _, s := range g.Services {
		if s.Name == g.Entry {
			continue
		}
		if len(s.Calls) > 0 && middle == "" {
			middle = s.Name
		}
		if len(s.Calls) == 0 {
			leaf = s.Name
		}
	}
	var out []string
	for _, n := range []string{middle, leaf} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
