// Command evaluate measures tracedup against Sentry without deduplication
// and against the original article's algorithm, on a seeded load over a
// service call graph, scored against the load's ground truth.
//
//	go run ./examples/evaluate                      # Online Boutique, 2000 requests
//	go run ./examples/evaluate -graph chain -json   # a chain of five, as JSON
//	go run ./examples/evaluate -graph my.json       # a graph of your own
//
// Every service runs a real sentry-go client, its own TracerProvider and an
// otelhttp-wrapped net/http handler; calls between services go through
// otelhttp's client transport to the callee's handler in memory.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tracedup/tracedup/internal/workload"
	"github.com/tracedup/tracedup/rootcause"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program, so that a test can run it; it returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cfg := workload.DefaultConfig()
	graph := flags.String("graph", "boutique", "call graph: boutique, chain, fanout, or a JSON file")
	flags.IntVar(&cfg.Requests, "requests", cfg.Requests, "requests to send")
	flags.Float64Var(&cfg.Fail, "fail", cfg.Fail, "fraction of requests in which a failure originates")
	flags.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the load")
	asJSON := flags.Bool("json", false, "print the rows as JSON")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	g, err := workload.LoadGraph(*graph)
	if err != nil {
		fmt.Fprintln(stderr, "evaluate:", err)
		return 2
	}
	start := time.Now()
	ev, err := evaluate(ctx, g, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "evaluate:", err)
		return 1
	}
	fmt.Fprintf(stderr, "evaluate: done in %v\n", time.Since(start).Round(time.Millisecond))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ev); err != nil {
			fmt.Fprintln(stderr, "evaluate:", err)
			return 1
		}
		return 0
	}
	printTable(stdout, ev)
	return 0
}

// evaluation is the result of one evaluate.
type evaluation struct {
	Graph   string          `json:"graph"`
	Config  workload.Config `json:"config"`
	Without []string        `json:"without"` // the services without tracedup in the partial rows
	Rows    []row           `json:"rows"`
}

// row is one configuration's line of the table.
type row struct {
	Name string `json:"name"`
	// Partial is true where the services in evaluation.Without run plain
	// sentry-go.
	Partial bool `json:"partial"`
	// Ours is true for tracedup's rows.
	Ours bool `json:"ours"`
	// CrossService is true where tracedup's services acknowledge calls.
	CrossService bool             `json:"cross_service"`
	Strategy     string           `json:"strategy,omitempty"`
	Metrics      workload.Metrics `json:"metrics"`
}

// evaluate generates the load and runs every configuration over it.
func evaluate(ctx context.Context, g *workload.Graph, cfg workload.Config, progress io.Writer) (*evaluation, error) {
	plan, err := workload.Generate(g, cfg)
	if err != nil {
		return nil, err
	}
	ev := &evaluation{Graph: g.Name, Config: cfg, Without: g.Partial()}
	fmt.Fprintf(progress, "evaluate: %s, %d requests, %d events, %d incidents\n",
		g.Name, len(plan.Requests), len(plan.Events), len(plan.Incidents))
	for _, partial := range []bool{false, true} {
		without := map[string]bool{}
		suffix := ""
		if partial {
			for _, s := range ev.Without {
				without[s] = true
			}
			suffix = ", partial"
		}
		runOpts := func(label string) workload.RunOptions {
			return workload.RunOptions{Progress: progress, Label: label + suffix}
		}
		base, err := workload.Run(ctx, plan, hookOnly{without}, runOpts("no dedup"))
		if err != nil {
			return nil, err
		}
		ev.Rows = append(ev.Rows,
			row{Name: "no dedup (hook alone)" + suffix, Partial: partial, Metrics: workload.Score(plan, workload.Reports(base))},
			row{Name: "article, one collector" + suffix, Partial: partial, Metrics: workload.Score(plan, workload.Article(base, false, cfg.Seed))},
			row{Name: "article, per process" + suffix, Partial: partial, Metrics: workload.Score(plan, workload.Article(base, true, cfg.Seed))},
		)
		if !partial {
			for _, s := range strategies {
				name := s.name + ", one process"
				o, err := workload.Run(ctx, plan, &oneProcess{strategy: s.new(), window: cfg.Window}, runOpts(name))
				if err != nil {
					return nil, err
				}
				ev.Rows = append(ev.Rows, row{Name: "tracedup " + name, Ours: true,
					Strategy: s.name, Metrics: workload.Score(plan, workload.Reports(o))})
			}
			name := "Default, one process, cascade types"
			o, err := workload.Run(ctx, plan, &oneProcess{strategy: rootcause.Default(), window: cfg.Window,
				cascadeTypes: []string{"DownstreamError"}}, runOpts(name))
			if err != nil {
				return nil, err
			}
			ev.Rows = append(ev.Rows, row{Name: "tracedup " + name, Ours: true,
				Strategy: "Default", Metrics: workload.Score(plan, workload.Reports(o))})
		}
		for _, cross := range []bool{false, true} {
			for _, s := range strategies {
				name := s.name
				if cross {
					name += ", cross-service"
				} else {
					name += ", in-process"
				}
				w := tracedup{strategy: s.new(), crossService: cross, without: without, window: cfg.Window}
				o, err := workload.Run(ctx, plan, w, runOpts(name))
				if err != nil {
					return nil, err
				}
				ev.Rows = append(ev.Rows, row{Name: "tracedup " + name + suffix, Partial: partial, Ours: true,
					CrossService: cross, Strategy: s.name, Metrics: workload.Score(plan, workload.Reports(o))})
			}
		}
		// The services' own word on what follows from a failed call: the
		// generator's callers wrap one in DownstreamError.
		name := "Default, cross-service, cascade types"
		w := tracedup{strategy: rootcause.Default(), crossService: true, without: without, window: cfg.Window,
			cascadeTypes: []string{"DownstreamError"}}
		o, err := workload.Run(ctx, plan, w, runOpts(name))
		if err != nil {
			return nil, err
		}
		ev.Rows = append(ev.Rows, row{Name: "tracedup " + name + suffix, Partial: partial, Ours: true,
			CrossService: true, Strategy: "Default", Metrics: workload.Score(plan, workload.Reports(o))})
	}
	return ev, nil
}

func printTable(w io.Writer, ev *evaluation) {
	c := ev.Config
	fmt.Fprintf(w, "graph %s, %d requests, fail %.2f, seed %d; partial rows: %s without tracedup\n\n",
		ev.Graph, c.Requests, c.Fail, c.Seed, strings.Join(ev.Without, ", "))
	fmt.Fprintf(w, "%-56s %6s %6s %6s %6s %7s %7s %6s %6s %6s %8s %8s %6s\n",
		"", "in", "sent", "reduc", "limit", "recall", "precis", "named", "hidden", "split", "p50", "p99", "issues")
	for _, r := range ev.Rows {
		m := r.Metrics
		fmt.Fprintf(w, "%-56s %6d %6d %5.1f%% %5.1f%% %6.1f%% %6.1f%% %6s %6d %6d %8s %8s %6d\n",
			r.Name, m.EventsIn, m.Sent, 100*m.Reduction, 100*m.Limit, 100*m.Recall, 100*m.Precision,
			fmt.Sprintf("%d/%d", m.Named, m.Incidents), m.Hidden, m.SplitTraces,
			m.DelayP50.Round(time.Millisecond), m.DelayP99.Round(time.Millisecond), m.Issues)
	}
	fmt.Fprint(w, `
in: error events the services captured; sent: error reports that reached Sentry;
limit: the reduction of one report per incident; recall: incidents whose origin
was sent; precis: of the reports sent, incidents' origins (each counted once);
named: incidents whose first report names the origin's service and type; hidden:
incidents with no report at all; split: requests with more reports than
incidents; p50/p99: origin to first report, in virtual time (tracedup's window
and the article's timer are 5 s); issues: Sentry's default grouping,
approximated by (service, exception type), messages by their parameterized text.
`)
}
