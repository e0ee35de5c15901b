package cos

import (
	"errors"
	"net/http"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Error classification: what a failed request says (status, COS code), and
// failures the driver finds itself.

// localError marks a failure found by the driver itself that sending the
// request again cannot fix.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// statusOf is the HTTP status of a COS error answer, or 0.
func statusOf(err error) int {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) && e.Response != nil {
		return e.Response.StatusCode
	}
	return 0
}

// codeOf is the COS error code of an answer, such as "NoSuchKey".
func codeOf(err error) string {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// isNotFound reports a missing key (HEAD answers carry no code, so any 404
// but NoSuchBucket and NoSuchUpload counts).
func isNotFound(err error) bool {
	if statusOf(err) != http.StatusNotFound {
		return false
	}
	switch codeOf(err) {
	case "NoSuchBucket", "NoSuchUpload":
		return false
	}
	return true
}

// rootCause strips the SDK's retry wrapper for messages.
func rootCause(err error) error {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		return e
	}
	return err
}
