package costest

import (
	"fmt"
	"strconv"
)

// COS caps the bandwidth of one request with x-cos-traffic-limit, sent as
// a header or as a (signed) query parameter, in bit/s from 819200
// (100 KB/s) to 838860800 (100 MB/s); a value outside that range answers
// 400 (the "single-connection bandwidth limit" page, 436/40140, and the
// GET Object API page).
const (
	trafficLimitName = "x-cos-traffic-limit"
	minTrafficLimit  = 819200
	maxTrafficLimit  = 838860800
)

// applyTrafficLimit paces the response body of a download to the
// request's x-cos-traffic-limit, or the Bandwidth fault when that is
// slower, and counts the limit in Stats.TrafficLimits.
func (q *request) applyTrafficLimit() error {
	v := q.r.Header.Get(trafficLimitName)
	if v == "" {
		v = q.query.Get(trafficLimitName)
	}
	if v == "" {
		return nil
	}
	bits, err := strconv.ParseInt(v, 10, 64)
	if err != nil || bits < minTrafficLimit || bits > maxTrafficLimit {
		return errInvalidArgument(fmt.Sprintf("x-cos-traffic-limit %q is out of range: want %d to %d bit/s", v, minTrafficLimit, maxTrafficLimit))
	}
	if rate := bits / 8; q.w.throttle == nil || q.w.throttle.rate > rate {
		q.w.throttle = newThrottle(rate)
	}
	q.h.stats.trafficLimit(q.op, bits)
	return nil
}
