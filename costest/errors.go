package costest

import (
	"net/http"
	"strconv"
)

// cosError is an error answered to the client as a COS <Error> document.
type cosError struct {
	status  int
	code    string
	message string
	// stringToSign and formatString are echoed on SignatureDoesNotMatch, as
	// real COS does, to ease debugging of signing code.
	stringToSign string
	formatString string
	// canonicalRequest is echoed on a SigV4 SignatureDoesNotMatch, as S3
	// does (sigv4.go).
	canonicalRequest string
}

func (e *cosError) Error() string {
	return strconv.Itoa(e.status) + " " + e.code + ": " + e.message
}

func newError(status int, code, message string) *cosError {
	return &cosError{status: status, code: code, message: message}
}

// Frequently used errors. Messages follow the S3-style texts COS uses.
func errNoSuchKey() *cosError {
	return newError(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
}

func errNoSuchBucket() *cosError {
	return newError(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
}

func errNoSuchUpload() *cosError {
	return newError(http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
}

func errInvalidArgument(msg string) *cosError {
	return newError(http.StatusBadRequest, "InvalidArgument", msg)
}

func errInvalidRequest(msg string) *cosError {
	return newError(http.StatusBadRequest, "InvalidRequest", msg)
}

func errMalformedXML() *cosError {
	return newError(http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
}

func errEntityTooLarge() *cosError {
	return newError(http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
}

func errInternal() *cosError {
	return newError(http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
}

func errSlowDown() *cosError {
	return newError(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
}

func errPreconditionFailed() *cosError {
	return newError(http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")
}
