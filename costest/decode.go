package costest

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// This file holds how the emulator reads requests: the query, key rules,
// small XML bodies and streamed object bodies.

// parseQuery parses a raw query as COS does, with '&' as the only
// separator. url.ParseQuery also refuses ';' and drops every pair that
// holds one, but COS's own documentation writes presigned URLs with a raw
// ';' in q-sign-time and q-key-time ("q-sign-time=1796186363;1796187263"),
// and the Node.js SDK sends them so: such a URL must authenticate like its
// %3B form. A pair whose escapes are malformed is dropped, as url.ParseQuery
// drops it.
func parseQuery(raw string) url.Values {
	values := url.Values{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		values[key] = append(values[key], value)
	}
	return values
}

// checkKey applies COS's key rules to a key being written.
func checkKey(key string) error {
	if len(key) > maxKeyLength {
		return newError(http.StatusBadRequest, "KeyTooLong", "Your key is too long.")
	}
	if key == "" || key[0] == '/' || key[0] == '\\' {
		return errInvalidArgument("The object key must not be empty or start with '/' or '\\'.")
	}
	return nil
}

// contentMD5 parses a Content-MD5 header; nil when absent.
func contentMD5(h http.Header) ([]byte, error) {
	v := h.Get("Content-MD5")
	if v == "" {
		return nil, nil
	}
	sum, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(sum) != md5.Size {
		return nil, newError(http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid.")
	}
	return sum, nil
}

func errBadDigest() error {
	return newError(http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
}

// receiveBlob streams the request body into a new blob, hashing it, and
// checks its length and Content-MD5. On success the blob is committed.
func (q *request) receiveBlob(limit int64) (segment, *digest, error) {
	wantMD5, err := contentMD5(q.r.Header)
	if err != nil {
		return segment{}, nil, err
	}
	if q.r.ContentLength > limit {
		return segment{}, nil, errEntityTooLarge()
	}
	bw, err := q.h.backend.CreateBlob()
	if err != nil {
		return segment{}, nil, err
	}
	d, err := copyHashed(bw, q.r.Body, limit)
	var ce *cosError
	switch {
	case errors.As(err, &ce):
		// The body's own check failed (XAmzContentSHA256Mismatch).
		err = ce
	case err != nil:
		err = newError(http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	case d.size > limit:
		err = errEntityTooLarge()
	case q.r.ContentLength >= 0 && d.size != q.r.ContentLength:
		err = newError(http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	case wantMD5 != nil && !bytes.Equal(wantMD5, d.md5Sum()):
		err = errBadDigest()
	}
	if err != nil {
		bw.Abort()
		return segment{}, nil, err
	}
	id, err := bw.Commit()
	if err != nil {
		return segment{}, nil, err
	}
	return segment{Blob: id, Size: d.size, HasSum: true, CRC64: d.crc, MD5: d.md5Hex()}, d, nil
}

// parseDecimal reads a non-negative decimal integer made of digits only
// (no sign, no spaces), as byte positions are written.
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// readXMLBody reads a small XML request body, checking Content-MD5.
func (q *request) readXMLBody(requireMD5 bool) ([]byte, error) {
	wantMD5, err := contentMD5(q.r.Header)
	if err != nil {
		return nil, err
	}
	if wantMD5 == nil && requireMD5 {
		// COS calls Content-MD5 required for POST, and its error code table
		// has the code for its absence: 400 MissingContentMD5 ("the request
		// header lacks Content-MD5", 请求头中缺少 Content-MD5). The SDKs
		// always send it.
		return nil, newError(http.StatusBadRequest, "MissingContentMD5", "Missing required header for this request: Content-MD5.")
	}
	body, err := io.ReadAll(io.LimitReader(q.r.Body, maxXMLBodySize+1))
	if ce := (*cosError)(nil); errors.As(err, &ce) {
		return nil, ce
	}
	if err != nil {
		return nil, newError(http.StatusBadRequest, "IncompleteBody", "The request body could not be read.")
	}
	if len(body) > maxXMLBodySize {
		return nil, errMalformedXML()
	}
	if wantMD5 != nil {
		if sum := md5.Sum(body); !bytes.Equal(sum[:], wantMD5) {
			return nil, errBadDigest()
		}
	}
	return body, nil
}

// decodeXMLDocument decodes a request body that must be exactly one XML
// document whose root element is named root. xml.Unmarshal alone would take
// any root element and ignore whatever follows it (a second element, text),
// which COS refuses as MalformedXML.
func decodeXMLDocument(body []byte, root string, v any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local != root {
				return fmt.Errorf("root element %s, want %s", tok.Name.Local, root)
			}
			if err := d.DecodeElement(v, &tok); err != nil {
				return err
			}
			return checkXMLEnd(d)
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return errors.New("text before the root element")
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
		}
	}
}

// checkXMLEnd accepts only white space, comments and processing
// instructions after the root element.
func checkXMLEnd(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return errors.New("text after the root element")
			}
		default:
			return errors.New("content after the root element")
		}
	}
}

// dropBlob removes a committed blob that no record took: the store refused
// the write it was received for.
func (q *request) dropBlob(seg segment) {
	if seg.Blob != "" {
		q.h.backend.RemoveBlob(seg.Blob)
	}
}
