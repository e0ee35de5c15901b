package costest

import (
	"io"
	"math/rand"
	"net/http"
	"strconv"
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

// injectRequestFaults applies the faults that hit a request before it is
// served: latency, then an error answer or a dropped connection. It reports
// whether the request is over (answered, dropped or abandoned by the
// client); a drop planned for a read's response body only arms rw.
func (h *Handler) injectRequestFaults(q *request, faults Faults, body *requestBody) (done bool) {
	if faults.Latency > 0 {
		t := time.NewTimer(faults.Latency)
		select {
		case <-t.C:
		case <-q.r.Context().Done():
			t.Stop()
			return true
		}
	}
	if h.faults.chance(faults.ErrorRate) {
		h.stats.fault("error")
		if h.faults.chance(0.5) {
			q.writeError(errInternal())
		} else {
			q.writeError(errSlowDown())
		}
		return true
	}
	if h.faults.chance(faults.DropRate) {
		h.stats.fault("drop")
		switch {
		case q.r.ContentLength != 0:
			// Cut the request body half-way (at once when its length is
			// unknown), before the request has any effect.
			limit := max(q.r.ContentLength/2, 0)
			io.CopyN(io.Discard, body, limit)
			panic(http.ErrAbortHandler)
		case isRead(q.op):
			q.w.dropArmed = true
		default:
			// A write without a body: drop before applying it.
			panic(http.ErrAbortHandler)
		}
	}
	return false
}

// isRead reports operations with no effect, whose drops happen in the
// response body.
func isRead(op string) bool {
	switch op {
	case opGetObject, opHeadObject, opHeadBucket, opListObjects, opListMultipartUploads, opListParts, opGetService,
		opGetBucketVersioning, opGetBucketLifecycle, opGetBucketAccelerate:
		return true
	}
	return false
}

// injectCompleteError answers 200 with an <Error> body when the
// CompleteErrorRate fault hits: COS reports failures that happen after it
// started answering Complete and copies this way. Nothing is applied.
func (q *request) injectCompleteError() bool {
	if !q.h.faults.chance(q.h.faults.get().CompleteErrorRate) {
		return false
	}
	q.h.stats.fault("complete-error")
	e := errInternal()
	q.writeBody(http.StatusOK, errorBody(e, q.r.Host+q.r.URL.Path, q.requestID, q.requestID))
	return true
}

// requestBody wraps a request body to count, pace and (for an injected
// drop) cut it off.
type requestBody struct {
	body     io.ReadCloser
	n        int64
	throttle *throttle
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.throttle != nil && len(p) > b.throttle.chunk() {
		p = p[:b.throttle.chunk()]
	}
	k, err := b.body.Read(p)
	b.n += int64(k)
	if b.throttle != nil && k > 0 {
		b.throttle.wait(k)
	}
	return k, err
}

func (b *requestBody) Close() error { return b.body.Close() }

// responseWriter wraps the http.ResponseWriter to record the status, count
// body bytes, pace them, and drop the connection half-way through the body
// when a drop fault is armed.
type responseWriter struct {
	w        http.ResponseWriter
	status   int
	written  int64
	throttle *throttle
	// dropArmed makes the writer drop the connection half-way through the
	// body it announces in Content-Length (or before any header when the
	// body is shorter than two bytes).
	dropArmed bool
	dropAfter int64 // -1: never
}

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if rw.status != 0 {
		return
	}
	if rw.dropArmed {
		cl, _ := strconv.ParseInt(rw.Header().Get("Content-Length"), 10, 64)
		if cl < 2 {
			panic(http.ErrAbortHandler)
		}
		rw.dropAfter = cl / 2
	}
	rw.status = code
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	total := 0
	for len(p) > 0 {
		k := len(p)
		if rw.throttle != nil {
			k = min(k, rw.throttle.chunk())
		}
		if rw.dropAfter >= 0 && rw.written+int64(k) > rw.dropAfter {
			k = int(rw.dropAfter - rw.written)
			n, _ := rw.w.Write(p[:k])
			rw.written += int64(n)
			if f, ok := rw.w.(http.Flusher); ok {
				f.Flush()
			}
			panic(http.ErrAbortHandler)
		}
		n, err := rw.w.Write(p[:k])
		rw.written += int64(n)
		total += n
		if err != nil {
			return total, err
		}
		if rw.throttle != nil {
			rw.throttle.wait(n)
		}
		p = p[k:]
	}
	return total, nil
}

// ReadFrom lets io.Copy use the connection's own ReadFrom (sendfile for
// files) when no fault needs to see every byte.
func (rw *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rf, ok := rw.w.(io.ReaderFrom); ok && rw.throttle == nil && rw.dropAfter < 0 {
		n, err := rf.ReadFrom(src)
		rw.written += n
		return n, err
	}
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	return io.CopyBuffer(writerOnly{rw}, src, *bp)
}

// writerOnly hides ReadFrom so io.CopyBuffer uses the buffer.
type writerOnly struct{ io.Writer }
