package costest

import (
	"encoding/xml"
	"errors"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file holds how the emulator writes COS's wire forms: times, owners,
// quoted ETags, XML documents and <Error> answers.

// xmlTime is the ISO 8601 form COS uses in XML, with milliseconds.
func xmlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// owner is the Owner and Initiator element of listings.
type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

// bucketOwner is the owner COS lists for objects: the bucket's APPID.
func bucketOwner(bucket string) owner {
	return owner{ID: appID(bucket), DisplayName: appID(bucket)}
}

// accountOwner is the CAM form of an owner, "qcs::cam::uin/<id>:uin/<id>",
// as COS gives it for upload initiators and in GET Service.
func accountOwner(id string) owner {
	return owner{ID: "qcs::cam::uin/" + id + ":uin/" + id, DisplayName: id}
}

func bucketInitiator(bucket string) owner { return accountOwner(appID(bucket)) }

func quote(etag string) string { return `"` + etag + `"` }

func unquote(etag string) string { return strings.Trim(strings.TrimSpace(etag), `"`) }

// errorDocument is the XML body of a COS error.
type errorDocument struct {
	XMLName      xml.Name `xml:"Error"`
	Code         string   `xml:"Code"`
	Message      string   `xml:"Message"`
	StringToSign string   `xml:"StringToSign,omitempty"`
	FormatString string   `xml:"FormatString,omitempty"`
	// CanonicalRequest is S3's debugging aid for a SigV4 signature.
	CanonicalRequest string `xml:"CanonicalRequest,omitempty"`
	Resource         string `xml:"Resource"`
	RequestID        string `xml:"RequestId"`
	TraceID          string `xml:"TraceId"`
}

// errorBody renders e as the document COS sends.
func errorBody(e *cosError, resource, requestID, traceID string) []byte {
	doc := errorDocument{
		Code: e.code, Message: e.message,
		StringToSign: e.stringToSign, FormatString: e.formatString, CanonicalRequest: e.canonicalRequest,
		Resource: resource, RequestID: requestID, TraceID: traceID,
	}
	out, _ := xml.Marshal(doc)
	return append([]byte("<?xml version='1.0' encoding='utf-8' ?>\n"), out...)
}

// writeError answers err: a COS error as its XML document, anything else as
// 500 InternalError. HEAD answers carry no body.
func (q *request) writeError(err error) {
	var ce *cosError
	if !errors.As(err, &ce) {
		log.Printf("costest: %s %s: %v", q.r.Method, q.r.URL.Path, err)
		ce = errInternal()
	}
	hdr := q.w.Header()
	traceID := newTraceID()
	hdr.Set("x-cos-trace-id", traceID)
	if q.r.Method == http.MethodHead || ce.status == http.StatusNotModified {
		q.w.WriteHeader(ce.status)
		return
	}
	resource := q.r.Host + q.r.URL.Path
	q.writeBody(ce.status, errorBody(ce, resource, q.requestID, traceID))
}

// writeBody sends an XML document with its length.
func (q *request) writeBody(status int, body []byte) {
	hdr := q.w.Header()
	hdr.Set("Content-Type", "application/xml")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	q.w.WriteHeader(status)
	q.w.Write(body)
}

// writeXML sends v as a 200 XML document.
func (q *request) writeXML(v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		q.writeError(err)
		return
	}
	q.writeBody(http.StatusOK, append([]byte(xml.Header), out...))
}
