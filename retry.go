package cos

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Backoff of retried requests: full jitter over an exponential ceiling.
const (
	retryBaseDelay = 50 * time.Millisecond
	retryMaxDelay  = 3 * time.Second
)

// do runs one COS request through the driver's concurrency bound, retrying
// 5xx, SlowDown, a 200 that carries an <Error> body and transport failures
// with exponential backoff and jitter, inside the context's deadline. 4xx
// answers are final. op names the COS operation for metrics and logs.
func (d *driver) do(ctx context.Context, op, key string, request func(context.Context) (*cossdk.Response, error)) error {
	select {
	case d.requests <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.requests }()

	for attempt := 0; ; attempt++ {
		start := time.Now()
		resp, err := request(ctx)
		status := statusOf(err)
		if err == nil && resp != nil {
			status = resp.StatusCode
		}
		d.observe(ctx, op, key, status, resp, err, time.Since(start))
		if err == nil || !retryable(ctx, err) || attempt >= d.params.MaxRetries {
			return err
		}
		d.metrics.retries.WithLabelValues(op).Inc()
		timer := time.NewTimer(backoff(attempt))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return err
		}
	}
}

// backoff is the wait before retry attempt+1: full jitter below an
// exponential ceiling, so replicas that failed together do not retry together.
func backoff(attempt int) time.Duration {
	ceiling := min(retryMaxDelay, retryBaseDelay<<min(attempt, 20))
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

func (d *driver) observe(ctx context.Context, op, key string, status int, resp *cossdk.Response, err error, took time.Duration) {
	label := "error"
	if status != 0 {
		label = strconv.Itoa(status)
	}
	d.metrics.requests.WithLabelValues(op, label).Inc()
	d.metrics.duration.WithLabelValues(op).Observe(took.Seconds())
	if !logrus.IsLevelEnabled(logrus.DebugLevel) {
		return
	}
	requestID := ""
	if resp != nil {
		requestID = resp.Header.Get("x-cos-request-id")
	}
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) && e.Response != nil {
		requestID = e.Response.Header.Get("x-cos-request-id")
	}
	entry := logrus.WithFields(logrus.Fields{
		"driver": DriverName, "op": op, "key": key, "status": label,
		"duration": took.Round(time.Microsecond), "requestid": requestID,
	})
	if err != nil {
		entry = entry.WithField("error", errorSummary(err))
	}
	entry.Debug("cos request")
}

// errorSummary describes an error without the request URL, which for a
// presigned request would carry a signature.
func errorSummary(err error) string {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		return e.Code + " " + e.Message
	}
	return err.Error()
}

// retryable says whether a failed request may succeed when sent again.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		if e.Response == nil {
			return false
		}
		s := e.Response.StatusCode
		// A 200 here carries an <Error> body: COS had started answering a
		// Copy or Complete before it failed.
		return s >= 500 || s == http.StatusOK
	}
	var local *localError
	if errors.As(err, &local) {
		return false
	}
	// Transport failures: resets, dropped connections, timeouts, CRC mismatches.
	return true
}
