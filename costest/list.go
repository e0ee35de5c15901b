package costest

import (
	"encoding/base64"
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
	Owner        *owner `xml:"Owner"`
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

// listPage is one page of an object listing: the entries after marker
// (keys, or common prefixes under delimiter), at most maxKeys of them.
type listPage struct {
	prefixes  []string
	objects   []*objectRecord
	truncated bool
	last      string // the last entry listed
}

// listObjectPage lists a page the way GET Bucket does: keys come in binary
// order; with a delimiter each key rolls up to its common prefix; entries
// (keys and prefixes) not after marker are skipped, so a marker naming a
// common prefix skips its whole group; maxKeys counts both kinds.
func (q *request) listObjectPage(prefix, marker, delimiter string, maxKeys int) (listPage, error) {
	objects, err := q.h.store.listObjects(q.bucket, prefix, q.listAsOf())
	if err != nil {
		return listPage{}, err
	}
	var page listPage
	count := 0
	for _, o := range objects {
		entry, isPrefix := rollUp(o.Key, prefix, delimiter)
		if entry <= marker || (isPrefix && entry == page.last) {
			continue
		}
		if count == maxKeys {
			page.truncated = maxKeys > 0
			break
		}
		count++
		page.last = entry
		if isPrefix {
			page.prefixes = append(page.prefixes, entry)
			continue
		}
		page.objects = append(page.objects, o)
	}
	return page, nil
}

// listed is the listing entry of an object.
func (q *request) listed(o *objectRecord, encoding string, withOwner bool) listedObject {
	e := listedObject{
		Key: encodeListName(o.Key, encoding), LastModified: xmlTime(o.Modified), ETag: quote(o.ETag),
		Size: o.Size, StorageClass: storageClass(o.Meta),
	}
	if withOwner {
		own := bucketOwner(q.bucket)
		e.Owner = &own
	}
	return e
}

// listParams reads the parameters both listing versions share.
func (q *request) listParams() (delimiter, encoding string, maxKeys int, err error) {
	if delimiter, err = q.parseDelimiter(); err != nil {
		return
	}
	if encoding, err = q.parseEncodingType(); err != nil {
		return
	}
	maxKeys, err = q.parseMaxItems("max-keys")
	return
}

// listObjects implements GET Bucket (List Objects v1), and for SigV4
// requests with list-type=2 ListObjectsV2.
func (q *request) listObjects() error {
	if q.s3 && q.query.Get("list-type") == "2" {
		return q.listObjectsV2()
	}
	prefix, marker := q.query.Get("prefix"), q.query.Get("marker")
	delimiter, encoding, maxKeys, err := q.listParams()
	if err != nil {
		return err
	}
	page, err := q.listObjectPage(prefix, marker, delimiter, maxKeys)
	if err != nil {
		return err
	}
	res := listBucketResult{
		Name: q.bucket, EncodingType: encoding, Prefix: encodeListName(prefix, encoding),
		Marker: encodeListName(marker, encoding), MaxKeys: maxKeys, Delimiter: encodeListName(delimiter, encoding),
		IsTruncated: page.truncated,
	}
	for _, p := range page.prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeListName(p, encoding)})
	}
	for _, o := range page.objects {
		res.Contents = append(res.Contents, q.listed(o, encoding, true))
	}
	if res.IsTruncated {
		res.NextMarker = encodeListName(page.last, encoding)
	}
	if q.h.misbehavior().UnorderedListing {
		reverseListing(res.Contents)
	}
	q.w.Header().Set("x-cos-bucket-region", q.h.regionOf(q.bucket))
	q.writeXML(res)
	return nil
}

type listBucketV2Result struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	KeyCount              int            `xml:"KeyCount"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	Contents              []listedObject `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

// listObjectsV2 implements ListObjectsV2 (GET Bucket with list-type=2),
// which COS serves on its S3-compatible surface only: it is not in the COS
// XML API pages or the Go SDK (cos-wire.md). The continuation token is
// opaque to clients; here it is the last entry listed, base64-encoded, and
// it wins over start-after as in S3. Owners are listed only with
// fetch-owner=true.
func (q *request) listObjectsV2() error {
	prefix, startAfter := q.query.Get("prefix"), q.query.Get("start-after")
	delimiter, encoding, maxKeys, err := q.listParams()
	if err != nil {
		return err
	}
	marker := startAfter
	token := q.query.Get("continuation-token")
	if q.query.Has("continuation-token") {
		raw, derr := base64.URLEncoding.DecodeString(token)
		if derr != nil || token == "" {
			return errInvalidArgument("The continuation token provided is incorrect.")
		}
		marker = string(raw)
	}
	page, err := q.listObjectPage(prefix, marker, delimiter, maxKeys)
	if err != nil {
		return err
	}
	res := listBucketV2Result{
		Name: q.bucket, Prefix: encodeListName(prefix, encoding), StartAfter: encodeListName(startAfter, encoding),
		ContinuationToken: token, MaxKeys: maxKeys, Delimiter: encodeListName(delimiter, encoding),
		EncodingType: encoding, IsTruncated: page.truncated, KeyCount: len(page.prefixes) + len(page.objects),
	}
	for _, p := range page.prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeListName(p, encoding)})
	}
	withOwner := q.query.Get("fetch-owner") == "true"
	for _, o := range page.objects {
		res.Contents = append(res.Contents, q.listed(o, encoding, withOwner))
	}
	if res.IsTruncated {
		res.NextContinuationToken = base64.URLEncoding.EncodeToString([]byte(page.last))
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
