package cos

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the driver's Prometheus series, served on the registry's
// metrics endpoint (the default Prometheus registry).
type metrics struct {
	requests      *prometheus.CounterVec // COS requests by operation and status
	retries       *prometheus.CounterVec // retried requests by operation
	bytesSent     prometheus.Counter
	bytesReceived prometheus.Counter
	partsInFlight prometheus.Gauge
	bufferBytes   prometheus.Gauge // part-buffer memory in use
}

// defaultMetrics is shared by every driver of the process: Prometheus
// series are process-wide.
var defaultMetrics = newMetrics(prometheus.DefaultRegisterer)

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "registry", "cos"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "COS requests by operation and HTTP status (\"error\" when no answer came)."},
			[]string{"operation", "status"}),
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
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.bytesSent, m.bytesReceived, m.partsInFlight, m.bufferBytes} {
		_ = reg.Register(c) // a second registration (tests) keeps the first
	}
	return m
}
