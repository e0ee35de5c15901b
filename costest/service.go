package costest

import (
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// listedBucket is one Bucket of ListAllMyBucketsResult. The Go SDK reads
// Name, Location and CreationDate (cos.Bucket); the documented sample gives
// CreationDate without milliseconds ("2016-07-29T03:09:54Z").
type listedBucket struct {
	Name         string `xml:"Name"`
	Location     string `xml:"Location"`
	CreationDate string `xml:"CreationDate"`
}

type listAllMyBucketsResult struct {
	XMLName     xml.Name       `xml:"ListAllMyBucketsResult"`
	Owner       owner          `xml:"Owner"`
	Buckets     []listedBucket `xml:"Buckets>Bucket"`
	Marker      string         `xml:"Marker"`
	NextMarker  string         `xml:"NextMarker,omitempty"`
	IsTruncated bool           `xml:"IsTruncated"`
}

// getService implements GET Service (List Buckets): every bucket the
// emulator holds (all belong to the one emulated account), or those of one
// region when the host is cos.<region>.myqcloud.com or the region
// parameter is given; names after marker in byte order, at most max-keys
// (default and cap 2000, as documented). The tag and create-time filters
// are not implemented: they are refused rather than ignored, so a client
// never mistakes an unfiltered list for a filtered one.
func (q *request) getService() error {
	for _, name := range []string{"tagkey", "tagvalue", "create-time", "range"} {
		if q.query.Has(name) {
			return newError(http.StatusNotImplemented, "NotImplemented", "The costest emulator does not filter GET Service by "+name+".")
		}
	}
	region, _ := serviceRegion(q.r.Host)
	if v := q.query.Get("region"); v != "" {
		region = v
	}
	maxKeys := maxServiceBuckets
	if v := q.query.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errInvalidArgument("max-keys must be a positive integer.")
		}
		maxKeys = min(n, maxServiceBuckets)
	}
	marker := q.query.Get("marker")
	buckets := q.h.store.allBuckets()
	slices.SortFunc(buckets, func(a, b *bucketRecord) int { return strings.Compare(a.Name, b.Name) })
	res := listAllMyBucketsResult{Owner: accountOwner(appID(q.h.bucket)), Marker: marker}
	for _, b := range buckets {
		if b.Name <= marker || (region != "" && b.Region != region) {
			continue
		}
		if len(res.Buckets) == maxKeys {
			res.IsTruncated = true
			res.NextMarker = res.Buckets[len(res.Buckets)-1].Name
			break
		}
		res.Buckets = append(res.Buckets, listedBucket{Name: b.Name, Location: b.Region, CreationDate: b.Created.UTC().Format("2006-01-02T15:04:05Z")})
	}
	q.writeXML(res)
	return nil
}

// ServiceHandler returns the handler of the service endpoint: it answers
// GET Service whatever the Host, so clients whose service host is the
// emulator's address (the Go SDK's BaseURL.ServiceURL, the Node.js SDK's
// ServiceDomain) list buckets instead of the default bucket's objects.
func (h *Handler) ServiceHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveHTTP(w, r, true) })
}
