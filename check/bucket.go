package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/registry-cos/cos"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// storageClass writes an object with the configured class, as the driver
// writes large blob data, and reads the class back from HEAD (COS names
// every class but STANDARD there).
func (pr *prober) storageClass(ctx context.Context) {
	class := pr.params.StorageClass
	name := "storage class " + class
	key := pr.key("storage-class")
	_, err := pr.put(ctx, key, []byte("x"), &cossdk.ObjectPutOptions{ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{XCosStorageClass: class}})
	if err != nil {
		pr.failed(name, "PUT Object with x-cos-storage-class 200 (multi-AZ classes need a multi-AZ bucket; INTELLIGENT_TIERING one with intelligent tiering enabled)", err)
		return
	}
	resp, err := pr.c.Object.Head(ctx, key, nil)
	if err != nil {
		pr.failed(name, "HEAD Object 200", err)
		return
	}
	got := resp.Header.Get("x-cos-storage-class")
	if got == "" {
		got = "STANDARD"
	}
	if got != class {
		pr.fail(name, "HEAD names the class "+class, got)
		return
	}
	threshold := pr.params.StorageClassThreshold
	if threshold == 0 {
		threshold = cos.DefaultStorageClassThreshold
	}
	standard := "STANDARD"
	if strings.HasPrefix(class, "MAZ_") {
		standard = "MAZ_STANDARD"
	}
	pr.ok(name, fmt.Sprintf("accepted; blob data of %d bytes and more is written %s, every other object %s", threshold, class, standard))
}

// trafficLimit checks x-cos-traffic-limit on a GET (the driver's reads and
// redirects with trafficlimit): a value in COS's range reads the object,
// one below it answers 400.
func (pr *prober) trafficLimit(ctx context.Context, key string, data []byte) {
	const name = "traffic limit"
	resp, err := pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{XCosTrafficLimit: 838860800})
	if err != nil {
		pr.failed(name, "GET Object with x-cos-traffic-limit 838860800 200", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, data) {
		pr.fail(name, fmt.Sprintf("the %d bytes at x-cos-traffic-limit 838860800", len(data)), fmt.Sprintf("%d other bytes", len(body)))
		return
	}
	_, err = pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{XCosTrafficLimit: 100})
	if status, _ := statusOf(err); status != http.StatusBadRequest {
		got := "200"
		if err != nil {
			got = describe(err)
		}
		pr.add(Result{Name: name, Status: Fail, Expected: "400 for x-cos-traffic-limit 100 (below 819200 bit/s)", Got: got, Assumption: true})
		return
	}
	detail := "honoured (819200 to 838860800 bit/s; 400 below)"
	if pr.params.TrafficLimit != 0 {
		detail += fmt.Sprintf("; trafficlimit caps downloads at %d bit/s", pr.params.TrafficLimit*8)
	}
	pr.add(Result{Name: name, Status: OK, Detail: detail, Assumption: true})
}

// bucketConfiguration reads versioning, lifecycle and acceleration. A read
// that is denied is a warning: the driver itself does not need it.
func (pr *prober) bucketConfiguration(ctx context.Context) {
	v, _, err := pr.c.Bucket.GetVersioning(ctx)
	switch {
	case accessDenied(err):
		pr.add(Result{Name: "versioning", Status: Warn, Expected: "a readable versioning state", Got: "403 AccessDenied", Action: "name/cos:GetBucketVersioning"})
	case err != nil:
		pr.add(Result{Name: "versioning", Status: Warn, Expected: "GET Bucket versioning 200", Got: describe(err)})
	case v.Status == "Enabled":
		pr.add(Result{Name: "versioning", Status: Warn, Expected: "versioning off", Got: "Enabled: every delete keeps the old version, which is billed"})
	default:
		pr.ok("versioning", "off")
	}

	lc, _, err := pr.c.Bucket.GetLifecycle(ctx)
	_, code := statusOf(err)
	switch {
	case accessDenied(err):
		pr.add(Result{Name: "lifecycle", Status: Warn, Expected: "a readable lifecycle configuration", Got: "403 AccessDenied", Action: "name/cos:GetBucketLifecycle"})
	case code == "NoSuchLifecycleConfiguration":
		pr.add(Result{Name: "lifecycle", Status: Warn, Expected: "a rule that aborts incomplete multipart uploads", Got: "no lifecycle rules (see docs/cos-setup.md)"})
	case err != nil:
		pr.add(Result{Name: "lifecycle", Status: Warn, Expected: "GET Bucket lifecycle 200", Got: describe(err)})
	default:
		days := 0
		for _, r := range lc.Rules {
			prefix := ""
			if r.Filter != nil {
				prefix = r.Filter.Prefix
			}
			if r.Status == "Enabled" && r.AbortIncompleteMultipartUpload != nil && strings.HasPrefix(pr.root, prefix) {
				days = r.AbortIncompleteMultipartUpload.DaysAfterInitiation
			}
		}
		if days == 0 {
			pr.add(Result{Name: "lifecycle", Status: Warn, Expected: "a rule that aborts incomplete multipart uploads", Got: fmt.Sprintf("%d rules, none aborting uploads under the root", len(lc.Rules))})
		} else {
			pr.ok("lifecycle", fmt.Sprintf("incomplete multipart uploads aborted after %d days", days))
		}
	}

	if pr.params.Accelerate {
		a, _, err := pr.c.Bucket.GetAccelerate(ctx)
		switch {
		case err != nil:
			pr.failed("acceleration", "global acceleration enabled (accelerate: true)", err)
		case a.Status != "Enabled":
			pr.fail("acceleration", "global acceleration enabled (accelerate: true)", "Status "+a.Status)
		default:
			pr.ok("acceleration", "enabled")
		}
	}
}

// leftovers counts the multipart uploads under the root older than
// StaleAfter (such as the s3-aws driver leaves) and their size.
func (pr *prober) leftovers(ctx context.Context) {
	const name = "stale multipart uploads"
	var stale []cossdk.ListUploadsResultUpload
	opt := &cossdk.ObjectListUploadsOptions{Prefix: pr.root, MaxUploads: 1000}
	for {
		var res *cossdk.ObjectListUploadsResult
		_, err := pr.call("name/cos:ListMultipartUploads", func() (*cossdk.Response, error) {
			var resp *cossdk.Response
			var err error
			res, resp, err = pr.c.Object.ListUploads(ctx, opt)
			return resp, err
		})
		if err != nil {
			pr.failed(name, "List Multipart Uploads 200", err)
			return
		}
		for _, u := range res.Upload {
			started, err := time.Parse(time.RFC3339, u.Initiated)
			if err == nil && time.Since(started) > pr.opts.StaleAfter && !strings.HasPrefix(u.Key, pr.scratch) {
				stale = append(stale, u)
			}
		}
		if !res.IsTruncated || res.NextKeyMarker == "" {
			break
		}
		opt.KeyMarker, opt.UploadIdMarker = res.NextKeyMarker, res.NextUploadIdMarker
	}
	if len(stale) == 0 {
		pr.ok(name, "none older than "+pr.opts.StaleAfter.String())
		return
	}
	var size int64
	for _, u := range stale {
		if parts, _, err := pr.c.Object.ListParts(ctx, u.Key, u.UploadID, nil); err == nil {
			for _, p := range parts.Parts {
				size += p.Size
			}
		}
	}
	if pr.opts.AbortStale {
		for _, u := range stale {
			pr.abort(ctx, u.Key, u.UploadID)
		}
		pr.ok(name, fmt.Sprintf("aborted %d uploads holding %d bytes", len(stale), size))
		return
	}
	pr.add(Result{Name: name, Status: Warn, Expected: "none older than " + pr.opts.StaleAfter.String(),
		Got: fmt.Sprintf("%d uploads holding %d bytes (billed); --abort-stale aborts them", len(stale), size)})
}

// cleanup removes everything the run wrote, even after a cancelled context.
func (pr *prober) cleanup(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	keys, uploads, err := pr.removeScratch(ctx)
	if err != nil {
		pr.failed("cleanup", "everything under "+pr.scratch+" removed", err)
		return
	}
	if keys > 0 || uploads > 0 {
		pr.fail("cleanup", "nothing left under "+pr.scratch, fmt.Sprintf("%d keys and %d multipart uploads still listed", keys, uploads))
		return
	}
	pr.ok("cleanup", "removed everything under "+pr.scratch)
}

// removeScratch aborts the uploads and deletes the keys under the scratch
// prefix, and says how many of each are still listed afterwards.
func (pr *prober) removeScratch(ctx context.Context) (keys, uploads int, err error) {
	opt := &cossdk.ObjectListUploadsOptions{Prefix: pr.scratch, MaxUploads: 1000}
	if res, _, err := pr.c.Object.ListUploads(ctx, opt); err == nil {
		for _, u := range res.Upload {
			pr.abort(ctx, u.Key, u.UploadID)
		}
	}
	for range 20 { // 1000 keys a batch; the probe writes about 1020
		res, _, err := pr.c.Bucket.Get(ctx, &cossdk.BucketGetOptions{Prefix: pr.scratch, MaxKeys: 1000})
		if err != nil {
			return 0, 0, err
		}
		if len(res.Contents) == 0 {
			break
		}
		var objects []cossdk.Object
		for _, o := range res.Contents {
			objects = append(objects, cossdk.Object{Key: o.Key})
		}
		if _, _, err := pr.c.Object.DeleteMulti(ctx, &cossdk.ObjectDeleteMultiOptions{Quiet: true, Objects: objects}); err != nil {
			return 0, 0, err
		}
	}
	res, _, err := pr.c.Bucket.Get(ctx, &cossdk.BucketGetOptions{Prefix: pr.scratch, MaxKeys: 1000})
	if err != nil {
		return 0, 0, err
	}
	left, _, err := pr.c.Object.ListUploads(ctx, opt)
	if err != nil {
		return 0, 0, err
	}
	return len(res.Contents), len(left.Upload), nil
}

// permissions reports each CAM action the driver needs: allowed, denied,
// or not tried because an earlier step failed.
func (pr *prober) permissions() {
	for _, action := range DriverActions {
		name := "permission " + strings.TrimPrefix(action, "name/cos:")
		allowed, tried := pr.tried[action]
		switch {
		case !tried:
			pr.add(Result{Name: name, Status: Warn, Expected: "tried once", Got: "not tried: an earlier step failed"})
		case !allowed:
			pr.add(Result{Name: name, Status: Fail, Expected: "allowed", Got: "403 AccessDenied", Action: action})
		default:
			pr.ok(name, "allowed")
		}
	}
}
