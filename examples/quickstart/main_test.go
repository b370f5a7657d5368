package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain runs the tests, or, in the processes the launcher starts from
// the test binary, the service.
func TestMain(m *testing.M) {
	if os.Getenv("SERVICE_NAME") != "" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// TestREADMEShowsTheQuickStart: README.md's Quick start is this program's
// code between the quickstart markers, exactly.
func TestREADMEShowsTheQuickStart(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	excerpt := between(t, string(src), "// quickstart:begin\n", "// quickstart:end\n")
	require.NotEmpty(t, strings.TrimSpace(excerpt))
	assert.True(t, strings.Contains(string(readme), "```go\n"+excerpt+"```\n"),
		"README.md's Quick start must be examples/quickstart/main.go between its markers, in a go block:\n%s", excerpt)
}

func between(t *testing.T, s, begin, end string) string {
	t.Helper()
	_, after, ok := strings.Cut(s, begin)
	require.True(t, ok, "no %q", begin)
	excerpt, _, ok := strings.Cut(after, end)
	require.True(t, ok, "no %q", end)
	return strings.TrimRight(excerpt, "\n") + "\n"
}

// TestDemo runs the quick start as go run does, with no DSN: one checkout,
// two services, one event (payment's) and order's cascade as a log on the
// same trace.
func TestDemo(t *testing.T) {
	t.Setenv("SENTRY_DSN", "")
	var out bytes.Buffer
	require.NoError(t, demo(&out))
	text := out.String()
	assert.Contains(t, text, "POST /checkout to order: 502 Bad Gateway")
	assert.Contains(t, text, "order: 1 errors captured, 0 sent, 1 suppressed as cascades")
	assert.Contains(t, text, "Sentry received 1 error event(s):")
	m := regexp.MustCompile(`event (\w{32})  payment \*main\.CardDeclined "card declined"  otel\.trace_id=(\w{32})`).FindStringSubmatch(text)
	require.NotNil(t, m, "payment's event in:\n%s", text)
	assert.Contains(t, text, "order: *main.CallFailed suppressed as a cascade of event "+m[1]+"  trace "+m[2],
		"order's cascade logged on the same trace, naming payment's event")
}
