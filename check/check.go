// Package check is the COS behaviour probe behind `registry-cos check`: it
// tries, once, every COS operation and behaviour the driver relies on,
// against the bucket a driver is configured for, and reports each as ok,
// warn or FAIL. The same probe runs against the costest emulator in CI and
// against an operator's real bucket, so a misreading shared by the driver
// and the emulator shows up on the first real run. Checks whose expected
// behaviour the emulator takes from an unconfirmed reading of COS are
// marked as assumptions.
//
// The probe writes only under a scratch prefix below rootdirectory and
// removes everything it wrote before it returns, also when its context is
// cancelled. It never reports a secret.
package check

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/registry-cos/cos"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Status is the outcome of one check.
type Status string

// The outcomes, in increasing gravity.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// Result is one check's outcome. Expected and Got say what was wanted and
// what COS answered when the check is not ok; Detail says what was seen
// when it is.
type Result struct {
	Name     string `json:"name"`
	Status   Status `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Expected string `json:"expected,omitempty"`
	Got      string `json:"got,omitempty"`
	// Action is the CAM action to allow when a request was denied.
	Action string `json:"action,omitempty"`
	// Assumption marks a behaviour the emulator implements from an
	// unconfirmed reading of COS: a real run confirms or refutes it.
	Assumption bool `json:"assumption,omitempty"`
}

// String is the report line of r: status, name, then what was seen.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %s", r.Status, r.Name)
	if r.Status == OK {
		if r.Detail != "" {
			b.WriteString(": " + r.Detail)
		}
	} else {
		if r.Expected != "" {
			fmt.Fprintf(&b, ": expected %s", r.Expected)
		}
		if r.Got != "" {
			fmt.Fprintf(&b, "; COS answered %s", r.Got)
		}
		if r.Action != "" {
			fmt.Fprintf(&b, "; allow %s in the CAM policy", r.Action)
		}
	}
	if r.Assumption {
		b.WriteString(" [assumption]")
	}
	return b.String()
}

// Options tune a run.
type Options struct {
	// AbortStale aborts the stale multipart uploads found under the root.
	AbortStale bool
	// StaleAfter is the age of a stale upload. Default 24 hours.
	StaleAfter time.Duration
	// HTTPClient fetches presigned URLs. Default: a client with the
	// driver's TLS settings (SkipVerify).
	HTTPClient *http.Client
}

// Report is the outcome of a run.
type Report struct {
	Results []Result `json:"results"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == Fail {
			return true
		}
	}
	return false
}

// DriverActions are the CAM actions the driver needs, each tried once by
// the permission checks; docs/cos-setup.md's minimal policy lists exactly
// these.
var DriverActions = []string{
	"name/cos:HeadBucket",
	"name/cos:GetBucket",
	"name/cos:ListMultipartUploads",
	"name/cos:PutObject",
	"name/cos:PutObjectCopy",
	"name/cos:GetObject",
	"name/cos:HeadObject",
	"name/cos:DeleteObject",
	"name/cos:DeleteMultipleObjects",
	"name/cos:InitiateMultipartUpload",
	"name/cos:UploadPart",
	"name/cos:UploadPartCopy",
	"name/cos:CompleteMultipartUpload",
	"name/cos:AbortMultipartUpload",
}

// Run probes the bucket d is configured for; p are the parameters d was
// built from.
func Run(ctx context.Context, d *cos.Driver, p cos.Parameters, opts Options) Report {
	if opts.StaleAfter == 0 {
		opts.StaleAfter = 24 * time.Hour
	}
	pr := newProber(d, p, opts)
	pr.where()
	if !pr.reachable() {
		return pr.report()
	}
	pr.behaviour(ctx)
	if ctx.Err() == nil {
		pr.bucketConfiguration(ctx)
		pr.leftovers(ctx)
	}
	pr.cleanup(ctx)
	if err := ctx.Err(); err != nil {
		// The checks after the interruption did not run; say so rather
		// than report them as not tried.
		pr.fail("interrupted", "a complete run", err.Error()+": the checks after it did not run")
		return pr.report()
	}
	pr.permissions()
	return pr.report()
}

// accessDenied reports a 403 AccessDenied answer.
func accessDenied(err error) bool {
	var e *cossdk.ErrorResponse
	return errors.As(err, &e) && e.Response != nil && e.Response.StatusCode == http.StatusForbidden
}

// describe says what COS answered, without URLs (a presigned URL carries a
// signature).
func describe(err error) string {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		status := 0
		if e.Response != nil {
			status = e.Response.StatusCode
		}
		return fmt.Sprintf("%d %s %s", status, e.Code, e.Message)
	}
	return err.Error()
}

func statusOf(err error) (int, string) {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) && e.Response != nil {
		return e.Response.StatusCode, e.Code
	}
	return 0, ""
}
