package deduphttp_test

import (
	"testing"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/scenario"
)

// newSystem returns a system of services that run tracedup in process and
// acknowledge through deduphttp.
func newSystem() *scenario.System { return scenario.NewSystem(scenario.Acknowledgement()) }

// TestScenarios runs the scenarios of the incident model (package
// scenario) through the acknowledgement: each service its own deduplicator
// and Sentry, deduphttp on both sides. It logs the table of recall and
// precision (go test -run TestScenarios -v); relay's TestScenarios runs the
// same through the relay.
func TestScenarios(t *testing.T) {
	scenario.Run(t, func(_ testing.TB, options ...dedup.Option) scenario.Wiring {
		return scenario.Acknowledgement(options...)
	})
}
