package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

// With -kafka the command produces what SDKs send to the topic, decides it
// as the group's only member, and on SIGTERM forwards what it holds, commits
// and exits 0.
func TestCommandWithKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, relay.DefaultTopic))
	require.NoError(t, err)
	defer c.Close()
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()

	addr, stop, done, output := start(t, "-upstream", upstream.URL(), "-listen", "127.0.0.1:0", "-window", "1h",
		"-kafka", strings.Join(c.ListenAddrs(), ","))
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: fmt.Sprintf("http://%s@%s/%s", fakesentry.DefaultPublicKey, addr, fakesentry.DefaultProject)})
	require.NoError(t, err)
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.Scope().SetContext("trace", sentry.Context{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "00000000000000c3"})
	hub.CaptureException(errors.New("card declined"))
	require.True(t, client.Flush(10*time.Second))
	client.Close()

	stop <- syscall.SIGTERM
	select {
	case status := <-done:
		assert.Equal(t, 0, status, "%s", output())
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not exit")
	}
	assert.Equal(t, 1, upstream.Len(), "forwarded before exiting: %s", output())
	out := output()
	assert.Contains(t, out, "kafka: 1 events produced, 0 refused")
	assert.Contains(t, out, "kafka: 1 records decided")
}

func TestCommandRefusesBadKafkaFlags(t *testing.T) {
	const secret = "hunter2-never-printed"
	for _, args := range [][]string{
		{"-kafka", "127.0.0.1:9092", "-role", "leader"},
		{"-kafka", "127.0.0.1:9092", "-kafka-sasl", "gssapi", "-kafka-user", "u", "-kafka-password", secret},
		{"-kafka", "127.0.0.1:9092", "-kafka-sasl", "plain", "-kafka-password", secret},
	} {
		var out strings.Builder
		status := run(append([]string{"-upstream", "https://o1.ingest.sentry.io", "-listen", "127.0.0.1:0"}, args...), &out, make(chan os.Signal))
		assert.Equal(t, 2, status, "%v", args)
		assert.Contains(t, out.String(), "tracedup-relay: -", "%v: says why", args)
		assert.NotContains(t, out.String(), secret)
	}
	var out strings.Builder
	assert.Zero(t, run([]string{"-h"}, &out, nil))
	for _, f := range []string{"-kafka ", "-topic", "-group", "-role", "-commit-interval", "-kafka-tls", "-kafka-sasl", "-kafka-user", "-kafka-password", "TRACEDUP_KAFKA_PASSWORD"} {
		assert.Contains(t, out.String(), f)
	}
}
