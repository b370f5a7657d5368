package sentryotel

import "sync"

// ResetDiagnoses lets a test see the once-per-process diagnoses again.
func ResetDiagnoses() {
	diagnosed.noContext, diagnosed.noSpan, diagnosed.noPropagator = sync.Once{}, sync.Once{}, sync.Once{}
}
