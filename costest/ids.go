package costest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"
)

// randomHex returns n random bytes as hex: blob ids and the tail of upload
// ids.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var uploadSeq atomic.Uint64

// newUploadID returns a URL-safe id of lowercase hex digits that starts with
// the initiation time, so upload ids sort in initiation order as on COS.
func newUploadID(now time.Time) string {
	return fmt.Sprintf("%010d%09d%06x%s", now.Unix(), now.Nanosecond(), uploadSeq.Add(1)&0xffffff, randomHex(16))
}

// newRequestID returns the x-cos-request-id of one answer: base64 of the
// time, a per-handler sequence number and random bits, as COS ids look.
func (h *Handler) newRequestID() string {
	raw := fmt.Sprintf("%x_%x_%x", time.Now().Unix(), h.requestSeq.Add(1), mrand.Uint32())
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// newTraceID returns the x-cos-trace-id of an error answer.
func newTraceID() string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%x", mrand.Uint64())))
}
