package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/internal/fakesentry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the command with args and returns the address it listens on,
// the channel that stops it, and its exit status and output once it ended.
func start(t *testing.T, args ...string) (addr string, stop chan os.Signal, done <-chan int, output func() string) {
	t.Helper()
	pr, pw := io.Pipe()
	stop = make(chan os.Signal, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(args, pw, stop)
		_ = pw.Close()
	}()
	lines := make(chan string, 100)
	var all strings.Builder
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		var ok bool
		addr, ok = strings.CutPrefix(line, "tracedup-relay: listening on ")
		require.True(t, ok, "first line: %q", line)
	case status := <-exit:
		t.Fatalf("exited %d before listening", status)
	}
	return addr, stop, exit, func() string { <-collected; return all.String() }
}

// The command's contract: it prints where it listens (the real port for
// :0), forwards what SDKs send, and on SIGTERM decides and forwards what it
// holds before exiting 0.
func TestCommandForwardsWhatItHoldsOnSIGTERM(t *testing.T) {
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()

	addr, stop, done, output := start(t, "-upstream", upstream.URL(), "-listen", "127.0.0.1:0", "-window", "1h")
	assert.NotContains(t, addr, ":0", "the real port")
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: fmt.Sprintf("http://%s@%s/%s", fakesentry.DefaultPublicKey, addr, fakesentry.DefaultProject)})
	require.NoError(t, err)
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.Scope().SetContext("trace", sentry.Context{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "00000000000000c3"})
	hub.CaptureException(errors.New("card declined"))
	require.True(t, client.Flush(10*time.Second))
	client.Close()
	assert.Zero(t, upstream.Len(), "held for its trace's window")

	stop <- syscall.SIGTERM
	select {
	case status := <-done:
		assert.Equal(t, 0, status, "%s", output())
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not exit")
	}
	assert.Equal(t, 1, upstream.Len(), "forwarded before exiting")
	out := output()
	assert.Contains(t, out, "1 error events received, 1 sent upstream")
}

func TestCommandRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-upstream", "o123.ingest.sentry.io"},
		{"-upstream", "https://o1.ingest.sentry.io", "-budget", "lots"},
		{"-upstream", "https://o1.ingest.sentry.io", "-listen", "256.0.0.1:1"},
	} {
		var out strings.Builder
		status := run(args, &out, make(chan os.Signal))
		assert.NotZero(t, status, "%v", args)
		assert.Contains(t, out.String(), "tracedup-relay", "%v: says why", args)
	}
	var out strings.Builder
	assert.Zero(t, run([]string{"-h"}, &out, nil))
	assert.Contains(t, out.String(), "-upstream")
}
