package costest

import (
	"maps"
	"strconv"
	"sync"
)

// Stats counts the requests a Handler answered. Handler.Stats returns a copy.
type Stats struct {
	// Requests counts requests by operation name, e.g. "PutObject".
	Requests map[string]int64
	// Status counts answers by "Operation Status", e.g. "GetObject 404".
	// A connection dropped before any status was sent counts as
	// "Operation drop".
	Status map[string]int64
	// BytesIn and BytesOut count request and response body bytes.
	BytesIn, BytesOut int64
	// Faults counts injected faults by kind: "error", "drop",
	// "complete-error".
	Faults map[string]int64
	// TrafficLimits counts the requests served at an x-cos-traffic-limit
	// by "Operation bit/s", e.g. "GetObject 819200".
	TrafficLimits map[string]int64
}

// Count returns how many requests of one operation were received.
func (s Stats) Count(op string) int64 { return s.Requests[op] }

// Total returns how many requests were received.
func (s Stats) Total() int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// statsCollector is the mutable, lock-protected side of Stats.
type statsCollector struct {
	mu sync.Mutex
	s  Stats
}

func newStatsCollector() *statsCollector {
	c := &statsCollector{}
	c.reset()
	return c
}

func (c *statsCollector) reset() {
	c.mu.Lock()
	c.s = Stats{Requests: map[string]int64{}, Status: map[string]int64{}, Faults: map[string]int64{}, TrafficLimits: map[string]int64{}}
	c.mu.Unlock()
}

func (c *statsCollector) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Requests: maps.Clone(c.s.Requests),
		Status:   maps.Clone(c.s.Status),
		BytesIn:  c.s.BytesIn,
		BytesOut: c.s.BytesOut,
		Faults:   maps.Clone(c.s.Faults),
		// The limits downloads were served at.
		TrafficLimits: maps.Clone(c.s.TrafficLimits),
	}
}

func (c *statsCollector) request(op string) {
	c.mu.Lock()
	c.s.Requests[op]++
	c.mu.Unlock()
}

// finish records the outcome of one request; status 0 means dropped before
// a status line was sent.
func (c *statsCollector) finish(op string, status int, in, out int64) {
	label := "drop"
	if status != 0 {
		label = strconv.Itoa(status)
	}
	c.mu.Lock()
	c.s.Status[op+" "+label]++
	c.s.BytesIn += in
	c.s.BytesOut += out
	c.mu.Unlock()
}

func (c *statsCollector) trafficLimit(op string, bits int64) {
	c.mu.Lock()
	c.s.TrafficLimits[op+" "+strconv.FormatInt(bits, 10)]++
	c.mu.Unlock()
}

func (c *statsCollector) fault(kind string) {
	c.mu.Lock()
	c.s.Faults[kind]++
	c.mu.Unlock()
}
