// Command tracedup-relay is a Sentry-protocol relay that sends one event per
// incident: SDKs of any language change only their DSN's host to it
// (https://KEY@relay-host:3000/PROJECT), and it forwards everything to
// -upstream, deduplicating error events across the services of a trace by
// the span links it learns from the transactions, span items and OTLP traces
// that pass through it.
//
// Usage:
//
//	tracedup-relay -upstream https://o123.ingest.sentry.io [-listen 127.0.0.1:3000]
//
// When it accepts connections it prints "tracedup-relay: listening on
// HOST:PORT" on stderr. On SIGTERM or SIGINT it stops accepting, decides and
// forwards what it holds within -shutdown-timeout, and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/relay"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, nil))
}

// run is the command, with its arguments and standard error; stop, when not
// nil, replaces SIGTERM and SIGINT (for tests). It returns the exit status.
func run(args []string, stderr io.Writer, stop <-chan os.Signal) int {
	fs := flag.NewFlagSet("tracedup-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "the Sentry to forward to, as scheme://host[:port] (https://o123.ingest.sentry.io, a self-hosted Sentry, or another relay); required")
	listen := fs.String("listen", "127.0.0.1:3000", "the address to accept SDKs on (Sentry Relay's port); end it in :0 for any free port")
	shutdown := fs.Duration("shutdown-timeout", 5*time.Second, "on SIGTERM or SIGINT, how long to decide and forward what the relay holds before exiting")
	budget := fs.String("budget", "512MiB", "the memory budget of everything the relay holds (events, span trees, queues), e.g. 256MiB, 1GiB")
	window := fs.Duration("window", relay.DefaultWindow, "the longest a trace's errors are held for a decision")
	grace := fs.Duration("grace", relay.DefaultGrace, "how long after a trace's spans arrived it is decided")
	metricsURL := fs.String("otlp-metrics", "", "send the relay's metrics (tracedup.relay.*, tracedup.dedup.*) by OTLP/HTTP to this URL every minute,\ne.g. http://collector:4318/v1/metrics; they are on GET /status either way")
	cascade := fs.String("cascade-types", "", "comma-separated exception types your services wrap a failed call in; only errors of those types then follow from another service's failure")
	kflags := addKafkaFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tracedup-relay -upstream URL [-listen ADDR] [-kafka BROKERS] [flags]\n\n"+
			"A Sentry-protocol relay: SDKs change only their DSN's host to it, and it forwards\n"+
			"everything upstream, one event per incident for errors.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *upstream == "" {
		fmt.Fprintln(stderr, "tracedup-relay: -upstream is required: the Sentry to forward to, as scheme://host[:port]")
		fs.Usage()
		return 2
	}
	up, err := url.Parse(*upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		fmt.Fprintf(stderr, "tracedup-relay: -upstream %q: want scheme://host[:port], as https://o123.ingest.sentry.io\n", *upstream)
		return 2
	}
	maxBytes, err := parseSize(*budget)
	if err != nil {
		fmt.Fprintf(stderr, "tracedup-relay: -budget %q: %v\n", *budget, err)
		return 2
	}
	var types []string
	for _, t := range strings.Split(*cascade, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}

	kc, withKafka, err := kflags.config()
	if err != nil {
		fmt.Fprintf(stderr, "tracedup-relay: %v\n", err)
		return 2
	}

	var mp *sdkmetric.MeterProvider
	if *metricsURL != "" {
		exp, err := otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(*metricsURL))
		if err != nil {
			fmt.Fprintf(stderr, "tracedup-relay: -otlp-metrics %q: %v\n", *metricsURL, err)
			return 2
		}
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), *shutdown)
			defer cancel()
			_ = mp.Shutdown(ctx) // sends the last values
		}()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "tracedup-relay: %v\n", err)
		return 1
	}
	cfg := relay.Config{MaxBytes: maxBytes, Window: *window, Grace: *grace, CascadeTypes: types,
		Options: []dedup.Option{dedup.WithCloseTimeout(*shutdown)}}
	if mp != nil {
		cfg.MeterProvider = mp
	}
	var server *relay.Server
	if withKafka {
		if server, err = relay.NewKafkaServer(up, cfg, kc); err != nil {
			_ = ln.Close()
			fmt.Fprintf(stderr, "tracedup-relay: %v\n", err)
			return 1
		}
	} else {
		server = relay.NewServer(up, cfg)
	}
	hs := &http.Server{Handler: server, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(stderr, "tracedup-relay: listening on %s\n", ln.Addr())

	if stop == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(c)
		stop = c
	}
	select {
	case sig := <-stop:
		fmt.Fprintf(stderr, "tracedup-relay: %s: forwarding what it holds (at most %s)\n", sig, *shutdown)
	case err := <-served:
		fmt.Fprintf(stderr, "tracedup-relay: %v\n", err)
		ctx, cancel := context.WithTimeout(context.Background(), *shutdown)
		defer cancel()
		_ = server.Shutdown(ctx)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	// Stop accepting, let the requests in flight finish, then decide and
	// forward what the relay holds, within the same deadline.
	if err := hs.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "tracedup-relay: closing connections: %v\n", err)
	}
	if err := server.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "tracedup-relay: %v\n", err)
	}
	st := server.Stats()
	d := st.Relay.Dedup
	fmt.Fprintf(stderr, "tracedup-relay: stopped: %d error events received, %d sent upstream, %d suppressed, %d dropped; upstream: %d sent, %d dropped\n",
		d.Received, d.Emitted, d.Suppressed, d.Dropped+st.Relay.Dropped, st.Upstream.Sent, st.Upstream.Dropped)
	if k := st.Kafka; k != nil {
		if p := k.Produce; p != nil {
			fmt.Fprintf(stderr, "tracedup-relay: kafka: %d events produced, %d refused (SDKs told to back off)\n", p.Events, p.Refused)
		}
		if c := k.Consumer; c != nil {
			fmt.Fprintf(stderr, "tracedup-relay: kafka: %d records decided, %d commits, %d records fed again\n", c.Records, c.Commits, c.Replayed)
		}
	}
	return 0
}

// parseSize reads a size in bytes: a number with an optional unit, B, KB,
// MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size, as 512MiB or 1GB")
	}
	return n * mult, nil
}
