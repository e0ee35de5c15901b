package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// The upload-state record. The driver keeps an unfinished upload's state
// in an object at the upload's own key, and grows it on the server: a
// multipart upload at that same key, whose first part is a copy of the
// record's tail pinned to the record's ETag and whose metadata is set at
// Initiate, replaces the record only at Complete. A resume reads the
// record's end with one suffix GET; later reads and copies of it are
// pinned with If-Match. uploadRecord does the same, in that order, on one
// record.

// The checks of the record, each but the first on the record it grows.
const (
	selfCopyCheck    = "part copy from the key it replaces"
	metadataCheck    = "metadata set at Initiate"
	pinnedCopyCheck  = "Upload Part - Copy pinned by If-Match"
	partCopyCRCCheck = "Upload Part - Copy CRC64"
	pinnedGETCheck   = "ranged GET pinned by If-Match"
	suffixRangeCheck = "suffix range GET"
)

// recordMeta is metadata as the driver sets it at Initiate on a record.
func recordMeta() http.Header {
	return http.Header{
		"X-Cos-Meta-Registry-Upload-Size":   {"1048576"},
		"X-Cos-Meta-Registry-Upload-Header": {"1000"},
	}
}

func (pr *prober) uploadRecord(ctx context.Context) {
	key := pr.key("record")
	first := randomBytes(mib + 100) // a 1 MiB tail, then the rest
	resp, err := pr.put(ctx, key, first, nil)
	if err != nil {
		pr.failed(selfCopyCheck, "PUT Object 200", err)
		return
	}
	stale := resp.Header.Get("ETag")
	record, etag, ok := pr.growRecord(ctx, key, first[:mib], stale)
	if !ok {
		for _, name := range []string{metadataCheck, pinnedCopyCheck, partCopyCRCCheck, pinnedGETCheck, suffixRangeCheck} {
			pr.add(Result{Name: name, Status: Warn, Expected: "tried once", Got: "not tried: " + selfCopyCheck + " failed"})
		}
		return
	}
	pr.initiateMetadata(ctx, key)
	pr.pinnedPartCopy(ctx, key, record, etag, stale)
	pr.pinnedRangedGET(ctx, key, record, etag, stale)
	pr.suffixRanges(ctx, key, record)
}

// growRecord replaces the object at key, whose ETag is etag, by a
// multipart upload at key: part 1 a copy of its first len(tail) bytes
// pinned to etag, part 2 new data. The key must read as before until
// Complete, and Complete's CRC64 must be that of the whole new content,
// which growRecord returns with the ETag Complete gives it.
func (pr *prober) growRecord(ctx context.Context, key string, tail []byte, etag string) ([]byte, string, bool) {
	const name = selfCopyCheck
	id, err := pr.initiate(ctx, key, recordMeta())
	if err != nil {
		pr.failed(name, "Initiate Multipart Upload 200", err)
		return nil, "", false
	}
	failed := func(expected string, err error) ([]byte, string, bool) {
		pr.failed(name, expected, err)
		pr.abort(ctx, key, id)
		return nil, "", false
	}
	copied, _, err := pr.copyPart(ctx, key, id, 1, key, 0, len(tail)-1, etag)
	if err != nil {
		return failed("Upload Part - Copy 200 of a range of the upload's own key", err)
	}
	added := randomBytes(1000)
	resp, err := pr.uploadPart(ctx, key, id, 2, added)
	if err != nil {
		return failed("Upload Part 200", err)
	}
	parts := []cossdk.Object{{PartNumber: 1, ETag: copied}, {PartNumber: 2, ETag: resp.Header.Get("ETag")}}
	head, err := pr.call("name/cos:HeadObject", func() (*cossdk.Response, error) { return pr.c.Object.Head(ctx, key, nil) })
	if err != nil {
		return failed("HEAD Object 200 before Complete", err)
	}
	if got := head.Header.Get("ETag"); got != etag {
		pr.fail(name, "the key unchanged (ETag "+etag+") until Complete", "ETag "+got+" before Complete")
		pr.abort(ctx, key, id)
		return nil, "", false
	}
	record := append(append([]byte{}, tail...), added...)
	newETag, resp, err := pr.complete(ctx, key, id, parts)
	if err != nil {
		return failed("Complete Multipart Upload 200", err)
	}
	// A missing CRC64 fails "Complete CRC64"; the suffix GET then reads
	// the content back.
	if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != "" && got != crcOf(record) {
		pr.add(Result{Name: name, Status: Fail, Expected: "Complete's x-cos-hash-crc64ecma " + crcOf(record) + " (the copied range, then the new part)",
			Got: got, Assumption: true})
		return nil, "", false
	}
	pr.add(Result{Name: name, Status: OK, Detail: "the key reads as before until Complete, then as the copy and the new part", Assumption: true})
	return record, newETag, true
}

// initiateMetadata checks that the metadata set at Initiate is on the
// completed object, in HEAD's answer and a GET's (a resume reads it from
// its suffix GET).
func (pr *prober) initiateMetadata(ctx context.Context, key string) {
	const name = metadataCheck
	head, err := pr.c.Object.Head(ctx, key, nil)
	if err != nil {
		pr.failed(name, "HEAD Object 200", err)
		return
	}
	get, err := pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: "bytes=-1"})
	if err != nil {
		pr.failed(name, "GET Object 206", err)
		return
	}
	get.Body.Close()
	for answer, resp := range map[string]*cossdk.Response{"HEAD": head, "GET": get} {
		for h, v := range recordMeta() {
			if got := resp.Header.Get(h); got != v[0] {
				pr.fail(name, fmt.Sprintf("%s: %s on the completed upload's %s", h, v[0], answer), fmt.Sprintf("%q", got))
				return
			}
		}
	}
	pr.ok(name, "x-cos-meta-* of Initiate on HEAD and GET of the completed object")
}

// pinnedPartCopy copies a range of src (a multipart object holding data)
// pinned to its ETag, then pinned to the ETag it had before, which must
// fail with 412 and copy nothing. The first copy's CRC64, when COS sends
// one, must be that of the range.
func (pr *prober) pinnedPartCopy(ctx context.Context, src string, data []byte, etag, stale string) {
	const name = pinnedCopyCheck
	dst := pr.key("record-copy")
	id, err := pr.initiate(ctx, dst, nil)
	if err != nil {
		pr.failed(name, "Initiate Multipart Upload 200", err)
		return
	}
	defer pr.abort(ctx, dst, id)
	_, resp, err := pr.copyPart(ctx, dst, id, 1, src, 0, mib-1, etag)
	if err != nil {
		pr.failed(name, "Upload Part - Copy 200 with x-cos-copy-source-If-Match: the source's ETag", err)
		return
	}
	pr.partCopyCRC(resp, crcOf(data[:mib]))
	_, _, err = pr.copyPart(ctx, dst, id, 2, src, 0, mib-1, stale)
	if status, code := statusOf(err); status != http.StatusPreconditionFailed {
		got := "200: the part was copied"
		if err != nil {
			got = describe(err)
		}
		pr.fail(name, "412 PreconditionFailed for a stale x-cos-copy-source-If-Match", got)
	} else {
		pr.ok(name, "the source's ETag copies, a stale one is 412 "+code)
	}
}

// partCopyCRC checks the CRC64 of a copied part. Where COS sends it is
// unconfirmed; the driver checks it when the header is there and
// otherwise relies on Complete's, so its absence is no failure.
func (pr *prober) partCopyCRC(resp *cossdk.Response, want string) {
	r := Result{Name: partCopyCRCCheck, Status: OK, Assumption: true}
	switch got := resp.Header.Get("x-cos-hash-crc64ecma"); got {
	case "":
		r.Detail = "no x-cos-hash-crc64ecma: copied parts are checked at Complete"
	case want:
		r.Detail = "x-cos-hash-crc64ecma matches the copied range"
	default:
		r.Status, r.Expected, r.Got = Fail, "x-cos-hash-crc64ecma "+want+" (the copied range)", got
	}
	pr.add(r)
}

// pinnedRangedGET reads a range of key pinned to its ETag, then to the
// ETag it had before, which must fail with 412.
func (pr *prober) pinnedRangedGET(ctx context.Context, key string, data []byte, etag, stale string) {
	const name = pinnedGETCheck
	get := func(ifMatch string) (*cossdk.Response, []byte, error) {
		resp, err := pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: "bytes=100-199", XOptionHeader: &http.Header{"If-Match": {ifMatch}}})
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, body, err := get(etag)
	if err != nil {
		pr.failed(name, "206 for Range with If-Match: the object's ETag", err)
		return
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		pr.fail(name, "206 with bytes 100-199", fmt.Sprintf("%d with %d bytes", resp.StatusCode, len(body)))
		return
	}
	resp, body, err = get(stale)
	if status, code := statusOf(err); status != http.StatusPreconditionFailed {
		got := fmt.Sprintf("%d with %d bytes", resp.StatusCode, len(body))
		if err != nil {
			got = describe(err)
		}
		pr.fail(name, "412 PreconditionFailed for a stale If-Match", got)
	} else {
		pr.ok(name, "the object's ETag reads the range, a stale one is 412 "+code)
	}
}

// suffixRanges reads the end of key (holding data) as a resume does:
// Range: bytes=-N, with N beyond the object's size (the whole object, as
// 206 or 200) and within it (the last N bytes, 206).
func (pr *prober) suffixRanges(ctx context.Context, key string, data []byte) {
	const name = suffixRangeCheck
	size := len(data)
	for _, n := range []int{size + 1000, 100} {
		want := data[max(size-n, 0):]
		wantRange := fmt.Sprintf("bytes %d-%d/%d", size-len(want), size-1, size)
		expected := fmt.Sprintf("206 with Content-Range %s for Range: bytes=-%d", wantRange, n)
		if n > size {
			expected += " (or 200 with the whole object)"
		}
		resp, err := pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: fmt.Sprintf("bytes=-%d", n)})
		if err != nil {
			pr.add(Result{Name: name, Status: Fail, Expected: expected, Got: describe(err), Assumption: true})
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cr := resp.Header.Get("Content-Range")
		whole200 := n > size && resp.StatusCode == http.StatusOK
		if err != nil || !bytes.Equal(body, want) || !(whole200 || resp.StatusCode == http.StatusPartialContent && cr == wantRange) {
			pr.add(Result{Name: name, Status: Fail, Expected: expected, Assumption: true,
				Got: fmt.Sprintf("%d with Content-Range %q and %d bytes, the expected ones %v (%v)", resp.StatusCode, cr, len(body), bytes.Equal(body, want), err)})
			return
		}
	}
	pr.add(Result{Name: name, Status: OK, Detail: "bytes=-N beyond the size reads the whole object, within it the last N bytes", Assumption: true})
}
