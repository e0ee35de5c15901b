package costest

import "net/http"

// Misbehavior makes the emulator break rules COS keeps, so that tests can
// show that `registry-cos check` notices. The zero value misbehaves in
// no way.
type Misbehavior struct {
	// OmitCRC64 drops x-cos-hash-crc64ecma from every answer.
	OmitCRC64 bool
	// UnorderedListing returns each listing page's objects in reverse.
	UnorderedListing bool
	// RefuseLongSuffixRange answers a suffix range longer than the object
	// (Range: bytes=-N with N > size) 416 InvalidRange, as a server that
	// takes the suffix for a first position before byte 0 would, instead
	// of sending the whole object.
	RefuseLongSuffixRange bool
	// IgnoreIfMatch ignores If-Match on GET and HEAD Object, so a stale
	// ETag reads the current content instead of failing with 412.
	IgnoreIfMatch bool
	// IgnoreCopySourceIfMatch ignores x-cos-copy-source-If-Match on PUT
	// Object - Copy and Upload Part - Copy, so a stale ETag copies the
	// current content instead of failing with 412.
	IgnoreCopySourceIfMatch bool
	// RefuseSelfPartCopy answers an Upload Part - Copy whose source is the
	// upload's own key 400 InvalidRequest, as PUT Object - Copy refuses to
	// copy an object onto itself unchanged.
	RefuseSelfPartCopy bool
	// Deny answers these operations (names as in Stats, such as
	// "CopyObject") 403 AccessDenied, as a CAM policy without the action would.
	Deny []string
}

// SetMisbehavior replaces the misbehavior; safe while serving.
func (h *Handler) SetMisbehavior(m Misbehavior) {
	h.settings.mu.Lock()
	defer h.settings.mu.Unlock()
	h.settings.misbehavior = m
}

func (h *Handler) misbehavior() Misbehavior {
	h.settings.mu.Lock()
	defer h.settings.mu.Unlock()
	return h.settings.misbehavior
}

// denied answers an operation the misbehavior denies.
func (h *Handler) denied(op string) *cosError {
	for _, d := range h.misbehavior().Deny {
		if d == op {
			return errAccessDenied("Access Denied (costest: operation " + op + " denied).")
		}
	}
	return nil
}

// crcDroppingWriter removes the CRC64 header of an answer (OmitCRC64).
type crcDroppingWriter struct{ http.ResponseWriter }

func (w crcDroppingWriter) WriteHeader(code int) {
	w.Header().Del("x-cos-hash-crc64ecma")
	w.ResponseWriter.WriteHeader(code)
}

func (w crcDroppingWriter) Write(p []byte) (int, error) {
	w.Header().Del("x-cos-hash-crc64ecma")
	return w.ResponseWriter.Write(p)
}

// reverseListing reverses a page's objects (UnorderedListing).
func reverseListing(objects []listedObject) {
	for i, j := 0, len(objects)-1; i < j; i, j = i+1, j-1 {
		objects[i], objects[j] = objects[j], objects[i]
	}
}
