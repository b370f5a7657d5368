package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runBasic runs the program with args and returns its exit code and output.
func runBasic(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunPrintsStampedEvent(t *testing.T) {
	code, out, errOut := runBasic(t)
	require.Equal(t, 0, code, "stderr: %s", errOut)

	m := regexp.MustCompile(`Spans:  trace ([0-9a-f]{32})\n`).FindStringSubmatch(out)
	require.NotNil(t, m, "no trace id in:\n%s", out)
	traceID := m[1]
	spanIDs := regexp.MustCompile(`span ([0-9a-f]{16})`).FindAllStringSubmatch(out, -1)
	require.Len(t, spanIDs, 2, "the parent and the child span in:\n%s", out)
	parentID, childID := spanIDs[0][1], spanIDs[1][1]

	for _, want := range []string{
		"otel.trace_id   " + traceID + "\n",
		"otel.span_id    " + childID + "\n",
		"service.name    checkout\n",
		"trace_id        " + traceID + "\n",
		"span_id         " + childID + "\n",
		"parent_span_id  " + parentID + "\n",
		"fingerprint     none: Sentry groups by its default\n",
		"*main.DeclinedError: charge order 1042: card declined",
	} {
		assert.Contains(t, out, want)
	}
}

func TestRunJSON(t *testing.T) {
	code, out, errOut := runBasic(t, "-json")
	require.Equal(t, 0, code, "stderr: %s", errOut)

	var event struct {
		Tags     map[string]string         `json:"tags"`
		Contexts map[string]map[string]any `json:"contexts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &event), "output:\n%s", out)
	assert.Regexp(t, `^[0-9a-f]{32}$`, event.Tags["otel.trace_id"])
	assert.Equal(t, event.Tags["otel.trace_id"], event.Contexts["trace"]["trace_id"])
	assert.Equal(t, event.Tags["otel.span_id"], event.Contexts["trace"]["span_id"])
	assert.Equal(t, "checkout", event.Tags["service.name"])
}

func TestRunBadArguments(t *testing.T) {
	code, _, errOut := runBasic(t, "-no-such-flag")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "-no-such-flag")

	code, _, errOut = runBasic(t, "-dsn", "not a dsn")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "basic:")
}
