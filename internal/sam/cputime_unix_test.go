//go:build unix

package sam

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU, deferred as defer reportCPU(b)(), adds the process CPU time
// per operation as cpu-ns/op. On a machine shared with other work it says
// more than wall time; for code that runs on several goroutines it is their
// sum.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
