package costest

import (
	"io"
	"net/http"
	"strconv"
)

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
