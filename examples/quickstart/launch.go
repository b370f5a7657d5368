package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

// The launcher's protocol with a service it starts: the service prints
// listenPrefix and its address as its first line, serves until its standard
// input closes, then flushes, prints its counters and exits.
const listenPrefix = "listening on "

// launch runs payment and order, each in a process of its own (this program
// again, with SERVICE_NAME set), sends order one checkout, stops both and
// prints what Sentry received. It returns the exit code.
func launch() int {
	if err := demo(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		return 1
	}
	return 0
}

func demo(out io.Writer) error {
	dsn := os.Getenv("SENTRY_DSN")
	var fake *fakesentry.Server
	if dsn == "" {
		var err error
		if fake, err = fakesentry.New(); err != nil {
			return err
		}
		defer fake.Close()
		dsn = fake.DSN()
		fmt.Fprintln(out, "SENTRY_DSN is not set: the services send to an embedded Sentry-protocol endpoint on loopback.")
	}

	payment, err := start(out, "payment", dsn, "")
	if err != nil {
		return err
	}
	defer payment.stop()
	order, err := start(out, "order", dsn, "http://"+payment.addr)
	if err != nil {
		return err
	}
	defer order.stop()

	// A client without a tracer, like a browser: order's span is the root
	// of the trace.
	resp, err := http.Post("http://"+order.addr+"/checkout", "application/json", strings.NewReader(`{"card":"4000000000000002"}`))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	fmt.Fprintf(out, "POST /checkout to order: %s\n", resp.Status)

	// From the edge inwards, as a deployment would stop.
	if err := errors.Join(order.stop(), payment.stop()); err != nil {
		return err
	}
	if fake == nil {
		fmt.Fprintln(out, "Sent to your Sentry project: one event, payment's *main.CardDeclined.")
		return nil
	}
	events := fake.Events()
	fmt.Fprintf(out, "\nSentry received %d error event(s):\n", len(events))
	for _, ev := range events {
		e := ev.Event
		typ, value := "", e.Message
		if n := len(e.Exception); n > 0 {
			typ, value = e.Exception[n-1].Type, e.Exception[n-1].Value
		}
		fmt.Fprintf(out, "  event %s  %s %s %q  %s=%s\n", e.EventID, e.Tags[sentryotel.TagServiceName], typ, value,
			sentryotel.TagTraceID, e.Tags[sentryotel.TagTraceID])
	}
	logs := fake.Logs()
	fmt.Fprintf(out, "and %d log(s):\n", len(logs))
	for _, l := range logs {
		fmt.Fprintf(out, "  %s  trace %s\n", l.Body, l.TraceID)
	}
	return nil
}

// process is a service the launcher started.
type process struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	stdin  io.Closer
	out    io.Writer
	lines  []string      // its output after the first line, written to out by stop
	output chan struct{} // closed when lines holds its output to the end
	done   bool
}

// start runs this program as service name, sending to dsn and calling
// paymentURL, and waits until it listens. Its output after the first line
// goes to out when it has stopped.
func start(out io.Writer, name, dsn, paymentURL string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "SERVICE_NAME="+name, "SENTRY_DSN="+dsn, "PAYMENT_URL="+paymentURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, stdin: stdin, out: out, output: make(chan struct{})}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), listenPrefix) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s did not start: %q", name, lines.Text())
	}
	p.addr = strings.TrimPrefix(lines.Text(), listenPrefix)
	go func() {
		defer close(p.output)
		for lines.Scan() {
			p.lines = append(p.lines, lines.Text())
		}
	}()
	return p, nil
}

// stop closes the service's standard input, which stops it, and waits for
// it to exit. It is safe to call twice.
func (p *process) stop() error {
	if p.done {
		return nil
	}
	p.done = true
	_ = p.stdin.Close()
	<-p.output
	for _, line := range p.lines {
		fmt.Fprintln(p.out, line)
	}
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// serve serves srv on a loopback port until standard input closes, then
// shuts it down, waiting for the requests in flight. It stands for
// srv.ListenAndServe() in a real service.
func serve(srv *http.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(listenPrefix + ln.Addr().String())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_, _ = io.Copy(io.Discard, os.Stdin)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
	}
	<-stopped
}
