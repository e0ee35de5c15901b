package costest

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// bucketNamePattern is "name-appid": name of a-z, 0-9 and '-' that neither
// starts nor ends with '-', appid numeric.
var bucketNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9]+$`)

func validBucketName(name string) bool { return bucketNamePattern.MatchString(name) }

// appID is the numeric suffix of a bucket name, used as owner id.
func appID(bucket string) string {
	if i := strings.LastIndexByte(bucket, '-'); i >= 0 {
		return bucket[i+1:]
	}
	return bucket
}

func (q *request) putBucket(region string) error {
	// The optional CreateBucketConfiguration body carries nothing the
	// emulator uses; it is read so the request is complete before it applies.
	if _, err := io.Copy(io.Discard, io.LimitReader(q.r.Body, maxXMLBodySize)); err != nil {
		return newError(http.StatusBadRequest, "IncompleteBody", "The request body could not be read.")
	}
	if !validBucketName(q.bucket) {
		return newError(http.StatusBadRequest, "InvalidBucketName", "The specified bucket is not valid.")
	}
	created, err := q.h.store.createBucket(&bucketRecord{Name: q.bucket, Region: region, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if !created {
		return newError(http.StatusConflict, "BucketAlreadyOwnedByYou", "The bucket you tried to create already exists, and you own it.")
	}
	q.w.Header().Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (q *request) headBucket() error {
	rec, _ := q.h.store.bucket(q.bucket)
	q.w.Header().Set("x-cos-bucket-region", rec.Region)
	q.w.WriteHeader(http.StatusOK)
	return nil
}
