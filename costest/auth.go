package costest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Credential is a key pair the emulator accepts.
type Credential struct {
	// SecretID and SecretKey are the key pair (q-ak and the HMAC key).
	SecretID, SecretKey string
	// SessionToken, when not empty, makes this a temporary key: every
	// request signed with it must carry x-cos-security-token equal to it
	// (a header, or a query parameter for presigned URLs).
	SessionToken string
	// Expiry is when a temporary key stops working (400 ExpiredToken);
	// zero means never.
	Expiry time.Time
}

// authFieldNames are the fields of a q-sign authorization.
var authFieldNames = []string{
	"q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time",
	"q-header-list", "q-url-param-list", "q-signature",
}

// cosURLEncode is the encoding the signature uses for names and values:
// RFC 3986 with uppercase hex, leaving only A-Z a-z 0-9 - _ . ~ literal.
func cosURLEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&15])
	}
	return b.String()
}

// canonicalPairs formats signed parameters or headers: names (already
// lower-cased and encoded) in order, each value encoded, several values of
// one name sorted and emitted as separate pairs, a name without a value as
// "name=".
func canonicalPairs(values map[string][]string) string {
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	slices.Sort(names)
	var pairs []string
	for _, k := range names {
		vs := slices.Clone(values[k])
		if len(vs) == 0 {
			vs = []string{""}
		}
		slices.Sort(vs)
		for _, v := range vs {
			pairs = append(pairs, k+"="+cosURLEncode(v))
		}
	}
	return strings.Join(pairs, "&")
}

// formatString is the HttpString of the q-sign algorithm.
func formatString(method, path string, params, headers map[string][]string) string {
	return strings.ToLower(method) + "\n" + path + "\n" + canonicalPairs(params) + "\n" + canonicalPairs(headers) + "\n"
}

// sign computes the StringToSign and the signature of a formatted request.
func sign(secretKey, signTime, keyTime, httpString string) (stringToSign, signature string) {
	signKey := hmacHex(secretKey, keyTime)
	sum := sha1.Sum([]byte(httpString))
	stringToSign = "sha1\n" + signTime + "\n" + hex.EncodeToString(sum[:]) + "\n"
	return stringToSign, hmacHex(signKey, stringToSign)
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// authFields finds the authorization in a request: the Authorization
// header, else a merged "sign" query parameter, else separate q-* query
// parameters. ok is false when the request is not signed at all.
func authFields(r *http.Request, query url.Values) (fields map[string]string, ok bool) {
	raw := r.Header.Get("Authorization")
	if raw == "" {
		raw = query.Get("sign")
	}
	if raw != "" {
		fields = map[string]string{}
		for part := range strings.SplitSeq(raw, "&") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			k = strings.ToLower(k)
			// Only the times may arrive with ';' escaped as %3B. The
			// header and parameter lists hold names in their encoded
			// form ("%21" for a parameter named "!"): decoding them
			// again would break the signature of such names.
			if k == "q-sign-time" || k == "q-key-time" {
				if u, err := url.QueryUnescape(v); err == nil {
					v = u
				}
			}
			fields[k] = v
		}
		return fields, true
	}
	if !query.Has("q-signature") && !query.Has("q-ak") {
		return nil, false
	}
	fields = map[string]string{}
	for _, name := range authFieldNames {
		if query.Has(name) {
			fields[name] = query.Get(name)
		}
	}
	return fields, true
}

// isAuthParam tells the authorization's own query parameters from the
// request's; they are never part of the signed parameters. Only the q-sign
// field names and "sign" are the authorization's: another parameter that
// merely starts with "q-" is the client's, and signed like any other.
func isAuthParam(name string) bool {
	name = strings.ToLower(name)
	return name == "sign" || slices.Contains(authFieldNames, name)
}

func parseKeyTime(s string) (start, end int64, ok bool) {
	a, b, found := strings.Cut(s, ";")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	return start, end, err1 == nil && err2 == nil && start <= end
}

func errAccessDenied(msg string) *cosError {
	return newError(http.StatusForbidden, "AccessDenied", msg)
}

// authenticate verifies a request's q-sign signature and credential.
func (h *Handler) authenticate(r *http.Request, query url.Values, now time.Time) *cosError {
	fields, ok := authFields(r, query)
	if !ok {
		return errAccessDenied("Access Denied.")
	}
	for _, name := range authFieldNames {
		if _, ok := fields[name]; !ok {
			return errAccessDenied("Authorization is malformed: missing " + name + ".")
		}
	}
	if fields["q-sign-algorithm"] != "sha1" {
		return errAccessDenied("Authorization is malformed: q-sign-algorithm must be sha1.")
	}
	cred, ok := h.lookupCredential(fields["q-ak"])
	if !ok {
		return newError(http.StatusForbidden, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
	}
	if !cred.Expiry.IsZero() && now.After(cred.Expiry) {
		return newError(http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
	}
	if cred.SessionToken != "" {
		token := r.Header.Get("x-cos-security-token")
		if token == "" {
			token = query.Get("x-cos-security-token")
		}
		// The exact code COS answers for a missing or foreign token is
		// [UNCONFIRMED]: the error table has no token code but the
		// ExpiredToken of an expired key, and neither SDK reacts to one.
		// The emulator refuses the request outright. The token may be an
		// unsigned query parameter: the Node.js SDK appends it to a
		// presigned URL after signing.
		if token != cred.SessionToken {
			return errAccessDenied("The x-cos-security-token is missing or does not belong to the SecretId.")
		}
	}
	start, end, ok := parseKeyTime(fields["q-sign-time"])
	if _, _, keyOK := parseKeyTime(fields["q-key-time"]); !ok || !keyOK {
		return errAccessDenied("Authorization is malformed: bad q-sign-time or q-key-time.")
	}
	// Which timestamp COS compares for skew is [UNCONFIRMED]: the error
	// table says only "local and server time differ by more than 15
	// minutes", and the Node.js SDK treats this code and an expired
	// signature alike (it corrects its clock from the answer's Date header
	// and retries). The emulator refuses a signature that starts more than
	// 15 minutes in the future.
	if time.Unix(start, 0).After(now.Add(maxClockSkew)) {
		return newError(http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
	}
	if now.Unix() > end {
		// Confirmed by the Node.js SDK, which recognises an expired
		// signature exactly by Code AccessDenied and Message "Request has
		// expired" (getRetryInfo), so the message must stay as it is.
		return errAccessDenied("Request has expired")
	}

	params := map[string][]string{}
	byName := map[string][]string{}
	for k, vs := range query {
		if isAuthParam(k) {
			continue
		}
		name := strings.ToLower(cosURLEncode(k))
		byName[name] = append(byName[name], vs...)
	}
	for name := range strings.SplitSeq(fields["q-url-param-list"], ";") {
		if name = strings.ToLower(name); name != "" {
			params[name] = byName[name]
		}
	}
	headers := map[string][]string{}
	for name := range strings.SplitSeq(fields["q-header-list"], ";") {
		name = strings.ToLower(name)
		switch name {
		case "":
		case "host":
			headers[name] = []string{r.Host}
		default:
			headers[name] = r.Header.Values(name)
		}
	}
	httpString := formatString(r.Method, r.URL.Path, params, headers)
	stringToSign, want := sign(cred.SecretKey, fields["q-sign-time"], fields["q-key-time"], httpString)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(fields["q-signature"]))) {
		e := newError(http.StatusForbidden, "SignatureDoesNotMatch", "The Signature you specified is invalid.")
		e.stringToSign = stringToSign
		e.formatString = httpString
		return e
	}
	return nil
}
