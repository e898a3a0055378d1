//go:build !unix

package sam

import "testing"

// reportCPU reports nothing where getrusage is unavailable.
func reportCPU(b *testing.B) func() { return func() {} }
