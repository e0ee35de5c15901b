package costest

import (
	"math/rand"
	"sync"
	"time"
)

// Faults are the failures and delays a Handler injects. The zero value
// injects nothing. Faults can be changed while the handler runs (SetFaults).
type Faults struct {
	// Latency is added before answering each request.
	Latency time.Duration
	// Bandwidth caps request and response body transfer at this many bytes
	// per second for each connection; 0 means no cap.
	Bandwidth int64
	// ErrorRate is the fraction of requests answered 500 InternalError or
	// 503 SlowDown (half each), before the request has any effect.
	ErrorRate float64
	// DropRate is the fraction of requests whose connection is dropped: in
	// the middle of the request body, before the request has any effect, or
	// in the middle of the response body of a read. A write whose
	// connection is dropped is never applied.
	DropRate float64
	// CompleteErrorRate is the fraction of Complete Multipart Upload, PUT
	// Object-Copy and Upload Part-Copy requests answered 200 with an <Error>
	// body (as COS does when a failure happens after it started answering);
	// such a request is not applied.
	CompleteErrorRate float64
	// ListLag delays what object listings and multipart-upload listings
	// see: a write or delete shows there only ListLag after it happened.
	// GET and HEAD by key always see the latest state.
	ListLag time.Duration
}

// faultState holds the current Faults and the random source that decides
// which requests they hit.
type faultState struct {
	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
}

func newFaultState(f Faults, seed int64) *faultState {
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &faultState{faults: f, rng: rand.New(rand.NewSource(seed))}
}

func (s *faultState) get() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *faultState) set(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// chance reports true with probability p.
func (s *faultState) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// throttle paces a byte stream to a rate in bytes per second.
type throttle struct {
	rate  int64
	start time.Time
	bytes int64
}

func newThrottle(rate int64) *throttle {
	if rate <= 0 {
		return nil
	}
	return &throttle{rate: rate, start: time.Now()}
}

// chunk is how many bytes to move before the next pause: a twentieth of a
// second's worth, so the pace is smooth.
func (t *throttle) chunk() int {
	return int(max(t.rate/20, 512))
}

// wait accounts for n more bytes and sleeps until they are due.
func (t *throttle) wait(n int) {
	t.bytes += int64(n)
	due := t.start.Add(time.Duration(float64(t.bytes) / float64(t.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}
