package costest

import (
	"encoding/xml"
	"net/http"
	"sync"
)

// Bucket configuration reads (GET Bucket versioning, lifecycle,
// accelerate), as COS's XML API defines them, so `registry-cos check` can
// inspect a bucket. The documents follow the ones the official Go SDK
// (v0.7.75) sends and parses: VersioningConfiguration{Status},
// LifecycleConfiguration{Rule...}, AccelerateConfiguration{Status,Type}.
// COS answers a bucket without lifecycle rules with 404
// NoSuchLifecycleConfiguration (the GET Bucket lifecycle API page).

// BucketConfig is the configuration the emulator reports for its buckets.
type BucketConfig struct {
	// Versioning is "", "Enabled" or "Suspended"; "" reports a bucket on
	// which versioning was never turned on (an empty Status).
	Versioning string
	// AbortIncompleteUploadDays, when positive, adds a lifecycle rule
	// that aborts multipart uploads that many days after they started.
	AbortIncompleteUploadDays int
	// LifecyclePrefix is the key prefix the lifecycle rule applies to;
	// "" is the whole bucket.
	LifecyclePrefix string
	// Accelerate reports global acceleration as enabled.
	Accelerate bool
}

// bucketSettings holds the bucket configuration and misbehavior.
type bucketSettings struct {
	mu          sync.Mutex
	config      BucketConfig
	misbehavior Misbehavior
}

// SetBucketConfig replaces the bucket configuration; safe while serving.
func (h *Handler) SetBucketConfig(c BucketConfig) {
	h.settings.mu.Lock()
	defer h.settings.mu.Unlock()
	h.settings.config = c
}

// CurrentBucketConfig returns the bucket configuration now reported, after
// any PUT Bucket versioning, lifecycle or accelerate.
func (h *Handler) CurrentBucketConfig() BucketConfig { return h.bucketConfig() }

func (h *Handler) bucketConfig() BucketConfig {
	h.settings.mu.Lock()
	defer h.settings.mu.Unlock()
	return h.settings.config
}

// bucketConfigOperation names a bucket-configuration read or write, or "".
func bucketConfigOperation(r *http.Request) string {
	if r.URL.Path != "/" && r.URL.Path != "" {
		return ""
	}
	q := r.URL.Query()
	ops := map[string][3]string{ // GET, PUT, DELETE
		"versioning": {opGetBucketVersioning, opPutBucketVersioning, ""},
		"lifecycle":  {opGetBucketLifecycle, opPutBucketLifecycle, opDeleteBucketLifecycle},
		"accelerate": {opGetBucketAccelerate, opPutBucketAccelerate, ""},
		// GET Bucket location (API page 8275; the Go SDK's GetLocation),
		// which S3 tools ask for too: answered, not listed as objects.
		"location": {opGetBucketLocation, "", ""},
	}
	for name, byMethod := range ops {
		if !q.Has(name) {
			continue
		}
		switch r.Method {
		case http.MethodGet:
			return byMethod[0]
		case http.MethodPut:
			return byMethod[1]
		case http.MethodDelete:
			return byMethod[2]
		}
	}
	return ""
}

// serveBucketConfig answers a bucket-configuration read or write.
func (q *request) serveBucketConfig() error {
	c := q.h.bucketConfig()
	switch q.op {
	case opPutBucketVersioning, opPutBucketLifecycle, opPutBucketAccelerate, opDeleteBucketLifecycle:
		if err := q.putBucketConfig(&c); err != nil {
			return err
		}
		q.h.SetBucketConfig(c)
		if q.op == opDeleteBucketLifecycle {
			q.w.WriteHeader(http.StatusNoContent)
		} else {
			q.writeBody(http.StatusOK, nil)
		}
	case opGetBucketVersioning:
		q.writeXML(struct {
			XMLName xml.Name `xml:"VersioningConfiguration"`
			Status  string   `xml:"Status"`
		}{Status: c.Versioning})
	case opGetBucketLocation:
		q.writeXML(struct {
			XMLName  xml.Name `xml:"LocationConstraint"`
			Location string   `xml:",chardata"`
		}{Location: q.h.regionOf(q.bucket)})
	case opGetBucketAccelerate:
		status := "Suspended"
		if c.Accelerate {
			status = "Enabled"
		}
		q.writeXML(struct {
			XMLName xml.Name `xml:"AccelerateConfiguration"`
			Status  string   `xml:"Status"`
			Type    string   `xml:"Type"`
		}{Status: status, Type: "COS"})
	case opGetBucketLifecycle:
		if c.AbortIncompleteUploadDays <= 0 {
			return newError(http.StatusNotFound, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist.")
		}
		type abort struct {
			DaysAfterInitiation int `xml:"DaysAfterInitiation"`
		}
		type rule struct {
			ID     string `xml:"ID"`
			Status string `xml:"Status"`
			Filter struct {
				Prefix string `xml:"Prefix"`
			} `xml:"Filter"`
			AbortIncompleteMultipartUpload abort `xml:"AbortIncompleteMultipartUpload"`
		}
		q.writeXML(struct {
			XMLName xml.Name `xml:"LifecycleConfiguration"`
			Rule    []rule   `xml:"Rule"`
		}{Rule: []rule{{ID: "abort-incomplete-uploads", Status: "Enabled", Filter: struct {
			Prefix string `xml:"Prefix"`
		}{Prefix: c.LifecyclePrefix},
			AbortIncompleteMultipartUpload: abort{DaysAfterInitiation: c.AbortIncompleteUploadDays}}}})
	}
	return nil
}

// putBucketConfig applies a bucket-configuration write to c. The bodies
// are the ones the official Go SDK sends (BucketPutVersioningOptions,
// BucketPutLifecycleOptions, BucketPutAccelerateOptions). A lifecycle is
// kept as its first enabled rule that aborts incomplete uploads, the one
// thing `check` reads; other rules are accepted and forgotten.
func (q *request) putBucketConfig(c *BucketConfig) error {
	if q.op == opDeleteBucketLifecycle {
		c.AbortIncompleteUploadDays, c.LifecyclePrefix = 0, ""
		return nil
	}
	body, err := q.readXMLBody(false)
	if err != nil {
		return err
	}
	enabledOrSuspended := func(status string) bool { return status == "Enabled" || status == "Suspended" }
	switch q.op {
	case opPutBucketVersioning, opPutBucketAccelerate:
		root := "VersioningConfiguration"
		if q.op == opPutBucketAccelerate {
			root = "AccelerateConfiguration"
		}
		var doc struct {
			Status string `xml:"Status"`
		}
		if err := decodeXMLDocument(body, root, &doc); err != nil || !enabledOrSuspended(doc.Status) {
			return errMalformedXML()
		}
		if q.op == opPutBucketVersioning {
			c.Versioning = doc.Status
		} else {
			c.Accelerate = doc.Status == "Enabled"
		}
	case opPutBucketLifecycle:
		var doc struct {
			Rules []struct {
				Status string `xml:"Status"`
				Filter struct {
					Prefix string `xml:"Prefix"`
				} `xml:"Filter"`
				Abort *struct {
					Days int `xml:"DaysAfterInitiation"`
				} `xml:"AbortIncompleteMultipartUpload"`
			} `xml:"Rule"`
		}
		if err := decodeXMLDocument(body, "LifecycleConfiguration", &doc); err != nil || len(doc.Rules) == 0 {
			return errMalformedXML()
		}
		c.AbortIncompleteUploadDays, c.LifecyclePrefix = 0, ""
		for _, r := range doc.Rules {
			if !enabledOrSuspended(r.Status) {
				return errMalformedXML()
			}
			if r.Status == "Enabled" && r.Abort != nil && r.Abort.Days > 0 {
				c.AbortIncompleteUploadDays, c.LifecyclePrefix = r.Abort.Days, r.Filter.Prefix
				break
			}
		}
	}
	return nil
}
