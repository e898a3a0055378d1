package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegistryOf exposes m's registry to the tests.
func RegistryOf(m *Metrics) *prometheus.Registry { return m.reg }
