package cos

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the driver's Prometheus series, served on the registry's
// metrics endpoint (the default Prometheus registry).
type metrics struct {
	requests      *prometheus.CounterVec   // COS requests by operation and status
	duration      *prometheus.HistogramVec // time of one COS request attempt, by operation
	retries       *prometheus.CounterVec   // retried requests by operation
	bytesSent     prometheus.Counter
	bytesReceived prometheus.Counter
	partsInFlight prometheus.Gauge
	bufferBytes   prometheus.Gauge // part-buffer memory in use
	bufferLimit   prometheus.Gauge // the budget bufferBytes is bounded by
	// credentialFailures counts failed fetches of temporary credentials
	// (CVM role, pod identity): the alert that fires before keys expire.
	credentialFailures prometheus.Counter
}

// defaultMetrics is shared by every driver of the process (a registry
// configures one, tests and tools make many). It must stay package-level:
// Prometheus series are process-wide, registered once on the default
// registry that the registry serves; a second set under the same names is
// refused (newMetrics keeps the first), so its counts would never be
// served. It is set once, at init, and never replaced.
var defaultMetrics = newMetrics(prometheus.DefaultRegisterer)

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "registry", "cos"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "COS requests by operation and HTTP status (\"error\" when no answer came)."},
			[]string{"operation", "status"}),
		// Buckets from a LAN round trip (a few ms) to a large part upload
		// or a slow Complete (tens of seconds).
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_duration_seconds", Help: "Time of one COS request attempt, by operation (for reads, until the answer's headers).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}},
			[]string{"operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retries_total", Help: "COS requests sent again after a 5xx, SlowDown or transport failure."},
			[]string{"operation"}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "sent_bytes_total", Help: "Object bytes sent to COS."}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "received_bytes_total", Help: "Object bytes read from COS."}),
		partsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "part_uploads_in_flight", Help: "Multipart part uploads under way."}),
		bufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "buffer_bytes_in_use", Help: "Part-buffer memory held by writers, bounded by maxbuffermemory."}),
		bufferLimit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "buffer_bytes_limit", Help: "The part-buffer budget (maxbuffermemory rounded down to whole chunks); writers wait when buffer_bytes_in_use reaches it."}),
		credentialFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "credential_refresh_failures_total", Help: "Failed attempts to fetch or renew temporary credentials."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.bytesSent, m.bytesReceived, m.partsInFlight, m.bufferBytes, m.bufferLimit, m.credentialFailures} {
		_ = reg.Register(c) // a second registration (tests) keeps the first
	}
	return m
}
