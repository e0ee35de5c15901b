package costest

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// listAsOf is the moment a listing reflects: ListLag ago.
func (q *request) listAsOf() time.Time {
	now := time.Now()
	if lag := q.h.faults.get().ListLag; lag > 0 {
		return now.Add(-lag)
	}
	return now
}

// parseMaxItems reads max-keys, max-uploads or max-parts: default and cap
// 1000 (the GET Bucket page: "default 1000, at most 1000"; the Node.js SDK
// documents the same defaults). COS's answer above 1000 is [UNCONFIRMED]:
// capping is what S3 does, and a client that pages on IsTruncated, as both
// SDKs' helpers do, lists correctly either way.
func (q *request) parseMaxItems(name string) (int, error) {
	v := q.query.Get(name)
	if v == "" {
		return maxListEntries, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errInvalidArgument(name + " must be a non-negative integer.")
	}
	return min(n, maxListEntries), nil
}

// parseDelimiter accepts one character. "One character" is read strictly
// as one byte.
func (q *request) parseDelimiter() (string, error) {
	d := q.query.Get("delimiter")
	if len(d) > 1 {
		return "", newError(http.StatusBadRequest, "InvalidDelimiter", "The delimiter must be a single character.")
	}
	return d, nil
}

// parseEncodingType accepts "" or "url".
func (q *request) parseEncodingType() (string, error) {
	e := q.query.Get("encoding-type")
	if e != "" && e != "url" {
		return "", errInvalidArgument("encoding-type must be url.")
	}
	return e, nil
}

// encodeListName applies encoding-type=url: percent-encoding that keeps '/'
// (a space is %20, '+' is %2B). Prefix, markers, delimiter and common
// prefixes are encoded too, as S3 does. COS is [UNCONFIRMED]: the GET
// Bucket page speaks of the keys only, and the Go SDK decodes only Key and
// UploadId of a listing it asked to be encoded (its resumable Upload), so it
// tells nothing about the other fields; the stricter choice, encoding all,
// makes a client that forgets to decode them fail here.
func encodeListName(s, encoding string) string {
	if encoding != "url" || s == "" {
		return s
	}
	return strings.ReplaceAll(cosURLEncode(s), "%2F", "/")
}

// rollUp returns the listing entry of a key: the common prefix it belongs to
// under delimiter, or the key itself.
func rollUp(key, prefix, delimiter string) (entry string, isPrefix bool) {
	if delimiter == "" {
		return key, false
	}
	if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
		return key[:len(prefix)+i+len(delimiter)], true
	}
	return key, false
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

type listedObject struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
}

type listBucketResult struct {
	XMLName        xml.Name       `xml:"ListBucketResult"`
	Name           string         `xml:"Name"`
	EncodingType   string         `xml:"EncodingType,omitempty"`
	Prefix         string         `xml:"Prefix"`
	Marker         string         `xml:"Marker"`
	MaxKeys        int            `xml:"MaxKeys"`
	Delimiter      string         `xml:"Delimiter,omitempty"`
	IsTruncated    bool           `xml:"IsTruncated"`
	NextMarker     string         `xml:"NextMarker,omitempty"`
	CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	Contents       []listedObject `xml:"Contents"`
}

func storageClass(m objectMeta) string {
	if m.StorageClass == "" {
		return "STANDARD"
	}
	return m.StorageClass
}

// listObjects implements GET Bucket (List Objects v1). Keys come in binary
// order; with a delimiter each key rolls up to its common prefix; entries
// (keys and prefixes) not after marker are skipped, so a marker naming a
// common prefix skips its whole group; max-keys counts both kinds.
func (q *request) listObjects() error {
	prefix, marker := q.query.Get("prefix"), q.query.Get("marker")
	delimiter, err := q.parseDelimiter()
	if err != nil {
		return err
	}
	encoding, err := q.parseEncodingType()
	if err != nil {
		return err
	}
	maxKeys, err := q.parseMaxItems("max-keys")
	if err != nil {
		return err
	}
	objects, err := q.h.store.listObjects(q.bucket, prefix, q.listAsOf())
	if err != nil {
		return err
	}
	res := listBucketResult{
		Name: q.bucket, EncodingType: encoding, Prefix: encodeListName(prefix, encoding),
		Marker: encodeListName(marker, encoding), MaxKeys: maxKeys, Delimiter: encodeListName(delimiter, encoding),
	}
	own := bucketOwner(q.bucket)
	count, last := 0, ""
	for _, o := range objects {
		entry, isPrefix := rollUp(o.Key, prefix, delimiter)
		if entry <= marker || (isPrefix && entry == last) {
			continue
		}
		if count == maxKeys {
			res.IsTruncated = maxKeys > 0
			break
		}
		count++
		last = entry
		if isPrefix {
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeListName(entry, encoding)})
			continue
		}
		res.Contents = append(res.Contents, listedObject{
			Key: encodeListName(o.Key, encoding), LastModified: xmlTime(o.Modified), ETag: quote(o.ETag),
			Size: o.Size, Owner: own, StorageClass: storageClass(o.Meta),
		})
	}
	if res.IsTruncated {
		res.NextMarker = encodeListName(last, encoding)
	}
	if q.h.misbehavior().UnorderedListing {
		reverseListing(res.Contents)
	}
	q.w.Header().Set("x-cos-bucket-region", q.h.regionOf(q.bucket))
	q.writeXML(res)
	return nil
}

type listedUpload struct {
	Key          string `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	StorageClass string `xml:"StorageClass"`
	Initiator    owner  `xml:"Initiator"`
	Owner        owner  `xml:"Owner"`
	Initiated    string `xml:"Initiated"`
}

type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	Bucket             string         `xml:"Bucket"`
	EncodingType       string         `xml:"Encoding-Type"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker,omitempty"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker,omitempty"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Prefix             string         `xml:"Prefix"`
	Delimiter          string         `xml:"Delimiter,omitempty"`
	Uploads            []listedUpload `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

// listUploads implements List Multipart Uploads: uploads by key then upload
// id; key-marker alone skips keys up to it, with upload-id-marker it also
// keeps that key's later uploads.
func (q *request) listUploads() error {
	prefix := q.query.Get("prefix")
	keyMarker, idMarker := q.query.Get("key-marker"), q.query.Get("upload-id-marker")
	if keyMarker == "" {
		idMarker = ""
	}
	delimiter, err := q.parseDelimiter()
	if err != nil {
		return err
	}
	encoding, err := q.parseEncodingType()
	if err != nil {
		return err
	}
	maxUploads, err := q.parseMaxItems("max-uploads")
	if err != nil {
		return err
	}
	uploads, err := q.h.store.listUploads(q.bucket, prefix, q.listAsOf())
	if err != nil {
		return err
	}
	res := listUploadsResult{
		Bucket: q.bucket, EncodingType: encoding, KeyMarker: encodeListName(keyMarker, encoding),
		UploadIDMarker: idMarker, MaxUploads: maxUploads, Prefix: encodeListName(prefix, encoding),
		Delimiter: encodeListName(delimiter, encoding),
	}
	own, initiator := bucketOwner(q.bucket), bucketInitiator(q.bucket)
	count, last, lastID := 0, "", ""
	for _, u := range uploads {
		entry, isPrefix := rollUp(u.Key, prefix, delimiter)
		switch {
		case isPrefix && (entry <= keyMarker || entry == last):
			continue
		case !isPrefix && (u.Key < keyMarker || (u.Key == keyMarker && (idMarker == "" || u.UploadID <= idMarker))):
			continue
		}
		if count == maxUploads {
			res.IsTruncated = maxUploads > 0
			break
		}
		count++
		last, lastID = entry, ""
		if isPrefix {
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeListName(entry, encoding)})
			continue
		}
		lastID = u.UploadID
		res.Uploads = append(res.Uploads, listedUpload{
			Key: encodeListName(u.Key, encoding), UploadID: u.UploadID, StorageClass: storageClass(u.Meta),
			Initiator: initiator, Owner: own, Initiated: xmlTime(u.Initiated),
		})
	}
	if res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = encodeListName(last, encoding), lastID
	}
	q.writeXML(res)
	return nil
}

type listedPart struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
}

type listPartsResult struct {
	XMLName              xml.Name     `xml:"ListPartsResult"`
	Bucket               string       `xml:"Bucket"`
	EncodingType         string       `xml:"Encoding-type"`
	Key                  string       `xml:"Key"`
	UploadID             string       `xml:"UploadId"`
	Owner                owner        `xml:"Owner"`
	PartNumberMarker     int          `xml:"PartNumberMarker"`
	Initiator            owner        `xml:"Initiator"`
	Parts                []listedPart `xml:"Part"`
	NextPartNumberMarker int          `xml:"NextPartNumberMarker,omitempty"`
	StorageClass         string       `xml:"StorageClass"`
	MaxParts             int          `xml:"MaxParts"`
	IsTruncated          bool         `xml:"IsTruncated"`
}

// listParts implements List Parts: parts after part-number-marker, at most
// max-parts. It reads the upload directly (never lagged).
func (q *request) listParts() error {
	id := q.query.Get("uploadId")
	if id == "" {
		return newError(http.StatusBadRequest, "ListPartUploadIdIsEmpty", "The uploadId must not be empty.")
	}
	encoding, err := q.parseEncodingType()
	if err != nil {
		return err
	}
	maxParts, err := q.parseMaxItems("max-parts")
	if err != nil {
		return err
	}
	marker := 0
	if v := q.query.Get("part-number-marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			return errInvalidArgument("part-number-marker must be a non-negative integer.")
		}
	}
	u, parts, err := q.h.store.upload(q.bucket, q.key, id)
	if err != nil {
		return err
	}
	res := listPartsResult{
		Bucket: q.bucket, EncodingType: encoding, Key: encodeListName(q.key, encoding), UploadID: id,
		Owner: bucketOwner(q.bucket), PartNumberMarker: marker, Initiator: bucketInitiator(q.bucket),
		StorageClass: storageClass(u.Meta), MaxParts: maxParts,
	}
	for _, p := range parts {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == maxParts {
			res.IsTruncated = maxParts > 0
			break
		}
		res.Parts = append(res.Parts, listedPart{PartNumber: p.Number, LastModified: xmlTime(p.Modified), ETag: quote(p.ETag), Size: p.Size})
	}
	if res.IsTruncated {
		res.NextPartNumberMarker = res.Parts[len(res.Parts)-1].PartNumber
	}
	q.writeXML(res)
	return nil
}
