package costest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (q *request) initiateUpload() error {
	if err := checkKey(q.key); err != nil {
		return err
	}
	now := time.Now().UTC()
	u := &uploadRecord{
		Bucket: q.bucket, Key: q.key, UploadID: newUploadID(now), Initiated: now,
		Meta: metaFromHeaders(q.r.Header), Parts: map[int]*partRecord{},
	}
	if err := q.h.store.createUpload(u); err != nil {
		return err
	}
	q.echoSSE(u.Meta)
	q.writeXML(initiateResult{Bucket: q.bucket, Key: q.key, UploadID: u.UploadID})
	return nil
}

// partNumber reads partNumber: 1..10000. The code COS answers outside the
// range is [UNCONFIRMED]: the Upload Part page gives only the range, and the
// SDKs check it before sending; InvalidArgument ("a request parameter is
// invalid" in the error table) is the closest documented code.
func (q *request) partNumber() (int, error) {
	n, err := strconv.Atoi(q.query.Get("partNumber"))
	if err != nil || n < 1 || n > q.h.maxParts {
		return 0, errInvalidArgument(fmt.Sprintf("Part number must be an integer between 1 and %d, inclusive.", q.h.maxParts))
	}
	return n, nil
}

func (q *request) uploadPart() error {
	number, err := q.partNumber()
	if err != nil {
		return err
	}
	id := q.query.Get("uploadId")
	if _, _, err := q.h.store.upload(q.bucket, q.key, id); err != nil {
		return err
	}
	if q.r.ContentLength < 0 {
		// Multipart upload does not accept chunked bodies.
		return newError(http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
	}
	seg, d, err := q.receiveBlob(maxPartSize)
	if err != nil {
		return err
	}
	p := &partRecord{Number: number, ETag: d.md5Hex(), Size: d.size, CRC64: d.crc, Modified: time.Now().UTC(), Segments: nonEmpty(seg)}
	if err := q.h.store.putPart(q.bucket, q.key, id, p); err != nil {
		q.dropBlob(seg)
		return err
	}
	q.dropUnused(seg, p.Segments)
	hdr := q.w.Header()
	hdr.Set("ETag", quote(p.ETag))
	hdr.Set("x-cos-hash-crc64ecma", strconv.FormatUint(p.CRC64, 10))
	hdr.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
	return nil
}

type completeRequest struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

func (q *request) completeUpload() error {
	id := q.query.Get("uploadId")
	body, err := q.readXMLBody(false)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := decodeXMLDocument(body, "CompleteMultipartUpload", &req); err != nil || len(req.Parts) == 0 {
		return errMalformedXML()
	}
	if _, _, err := q.h.store.upload(q.bucket, q.key, id); err != nil {
		return err
	}
	if q.injectCompleteError() {
		return nil
	}
	rec, err := q.h.store.completeUpload(q.bucket, q.key, id, func(u *uploadRecord, _ []*partRecord) (*objectRecord, error) {
		rec := &objectRecord{Key: q.key, Modified: time.Now().UTC(), Meta: u.Meta}
		md5s := md5.New()
		prev := 0
		for _, want := range req.Parts {
			if want.PartNumber <= prev {
				return nil, newError(http.StatusBadRequest, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
			}
			prev = want.PartNumber
		}
		for i, want := range req.Parts {
			p, ok := u.Parts[want.PartNumber]
			if !ok || p.ETag != unquote(want.ETag) {
				return nil, newError(http.StatusBadRequest, "InvalidPart", fmt.Sprintf("Part %d could not be found or its ETag did not match.", want.PartNumber))
			}
			if i < len(req.Parts)-1 && p.Size < minPartSize {
				return nil, newError(http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.")
			}
			raw, _ := hex.DecodeString(p.ETag)
			md5s.Write(raw)
			rec.CRC64 = crc64Combine(rec.CRC64, p.CRC64, p.Size)
			rec.Size += p.Size
			rec.Segments = append(rec.Segments, p.Segments...)
		}
		rec.ETag = hex.EncodeToString(md5s.Sum(nil)) + "-" + strconv.Itoa(len(req.Parts))
		return rec, nil
	})
	if err != nil {
		return err
	}
	q.w.Header().Set("x-cos-hash-crc64ecma", strconv.FormatUint(rec.CRC64, 10))
	q.writeXML(completeResult{
		Location: "http://" + bucketHost(q.bucket, q.h.regionOf(q.bucket)) + "/" + q.key,
		Bucket:   q.bucket, Key: q.key, ETag: quote(rec.ETag),
	})
	return nil
}

func (h *Handler) regionOf(bucket string) string {
	if rec, ok := h.store.bucket(bucket); ok {
		return rec.Region
	}
	return h.region
}

func (q *request) abortUpload() error {
	if err := q.h.store.abortUpload(q.bucket, q.key, q.query.Get("uploadId")); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
