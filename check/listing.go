package check

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// orderKeys sort around '/': COS lists in byte order, where '-' and '.'
// come before '/' and '0' after it. The driver's walk reorders them into
// the registry's path order, so it relies on byte order exactly.
var orderKeys = []string{"a-b", "a.b", "a/c", "a0"}

func (pr *prober) list(ctx context.Context, opt *cossdk.BucketGetOptions) (*cossdk.BucketGetResult, error) {
	var res *cossdk.BucketGetResult
	_, err := pr.call("name/cos:GetBucket", func() (*cossdk.Response, error) {
		var resp *cossdk.Response
		var err error
		res, resp, err = pr.c.Bucket.Get(ctx, opt)
		return resp, err
	})
	return res, err
}

func keysOf(res *cossdk.BucketGetResult, prefix string) []string {
	var keys []string
	for _, o := range res.Contents {
		keys = append(keys, strings.TrimPrefix(o.Key, prefix))
	}
	return keys
}

// listing checks order, delimiter, a marker on a common prefix, paging at
// 1000 keys and encoding-type=url.
func (pr *prober) listing(ctx context.Context) {
	prefix := pr.key("order/")
	for _, k := range orderKeys {
		if _, err := pr.put(ctx, prefix+k, []byte(k), nil); err != nil {
			pr.failed("listing order", "PUT Object 200", err)
			return
		}
	}
	res, err := pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, MaxKeys: 1000})
	if err != nil {
		pr.failed("listing order", "GET Bucket 200", err)
		return
	}
	if got := strings.Join(keysOf(res, prefix), " "); got != strings.Join(orderKeys, " ") {
		pr.fail("listing order", "byte order "+strings.Join(orderKeys, " "), got)
	} else {
		pr.ok("listing order", "byte order: "+got)
	}

	res, err = pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, Delimiter: "/", MaxKeys: 1000})
	want := "a-b a.b a0 | a/"
	if err != nil {
		pr.failed("delimiter", "GET Bucket 200", err)
	} else if got := strings.Join(keysOf(res, prefix), " ") + " | " + strings.TrimPrefix(strings.Join(res.CommonPrefixes, " "), prefix); got != want {
		pr.fail("delimiter", "objects | common prefixes = "+want, got)
	} else {
		pr.ok("delimiter", "common prefix a/ in its byte-order place")
	}

	// A marker equal to a common prefix resumes after everything under it.
	res, err = pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, Delimiter: "/", Marker: prefix + "a/", MaxKeys: 1000})
	if err != nil {
		pr.failed("marker on a common prefix", "GET Bucket 200", err)
	} else if got := strings.Join(keysOf(res, prefix), " ") + " | " + strings.Join(res.CommonPrefixes, " "); got != "a0 | " {
		pr.add(Result{Name: "marker on a common prefix", Status: Fail, Expected: "a0 only", Got: got, Assumption: true})
	} else {
		pr.add(Result{Name: "marker on a common prefix", Status: OK, Detail: "resumes after the prefix", Assumption: true})
	}

	pr.paging(ctx)
	pr.encodedListing(ctx)
}

// paging writes 1001 small keys: a listing page holds at most 1000.
func (pr *prober) paging(ctx context.Context) {
	const n = 1001
	prefix := pr.key("page/")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := pr.put(ctx, fmt.Sprintf("%s%04d", prefix, i), nil, nil); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		pr.failed("paging at 1000", "PUT Object 200", firstErr)
		return
	}
	first, err := pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, MaxKeys: 1000})
	if err != nil {
		pr.failed("paging at 1000", "GET Bucket 200", err)
		return
	}
	marker := first.NextMarker
	if marker == "" && len(first.Contents) > 0 {
		marker = first.Contents[len(first.Contents)-1].Key
	}
	second, err := pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, Marker: marker, MaxKeys: 1000})
	if err != nil {
		pr.failed("paging at 1000", "GET Bucket 200", err)
		return
	}
	if len(first.Contents) != 1000 || !first.IsTruncated || len(second.Contents) != 1 || second.IsTruncated {
		pr.fail("paging at 1000", "a truncated page of 1000 keys, then 1 key",
			fmt.Sprintf("%d keys (truncated %v), then %d (truncated %v)", len(first.Contents), first.IsTruncated, len(second.Contents), second.IsTruncated))
		return
	}
	pr.ok("paging at 1000", "1000 keys, then the 1001st after the marker")
}

// oddKey holds characters XML cannot carry raw or that URLs escape.
const oddKey = "odd key+%&<é>"

func (pr *prober) encodedListing(ctx context.Context) {
	const name = "encoding-type=url"
	prefix := pr.key("encoded/")
	if _, err := pr.put(ctx, prefix+oddKey, []byte("x"), nil); err != nil {
		pr.failed(name, "PUT Object 200", err)
		return
	}
	res, err := pr.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix, EncodingType: "url", MaxKeys: 1000})
	if err != nil {
		pr.failed(name, "GET Bucket 200", err)
		return
	}
	if len(res.Contents) != 1 {
		pr.fail(name, "one key", fmt.Sprint(len(res.Contents), " keys"))
		return
	}
	got, err := url.QueryUnescape(res.Contents[0].Key)
	if err != nil || got != prefix+oddKey {
		pr.add(Result{Name: name, Status: Fail, Expected: fmt.Sprintf("%q URL-encoded", prefix+oddKey), Got: fmt.Sprintf("%q", res.Contents[0].Key), Assumption: true})
		return
	}
	pr.add(Result{Name: name, Status: OK, Detail: "odd keys come back URL-encoded", Assumption: true})
}

// quietDelete deletes three keys, one of them missing, in quiet mode.
func (pr *prober) quietDelete(ctx context.Context) {
	const name = "quiet multi-delete"
	keys := []string{pr.key("delete/1"), pr.key("delete/2"), pr.key("delete/missing")}
	for _, k := range keys[:2] {
		if _, err := pr.put(ctx, k, []byte("x"), nil); err != nil {
			pr.failed(name, "PUT Object 200", err)
			return
		}
	}
	var res *cossdk.ObjectDeleteMultiResult
	_, err := pr.call("name/cos:DeleteMultipleObjects", func() (*cossdk.Response, error) {
		var objects []cossdk.Object
		for _, k := range keys {
			objects = append(objects, cossdk.Object{Key: k})
		}
		var resp *cossdk.Response
		var err error
		res, resp, err = pr.c.Object.DeleteMulti(ctx, &cossdk.ObjectDeleteMultiOptions{Quiet: true, Objects: objects})
		return resp, err
	})
	if err != nil {
		pr.failed(name, "Delete Multiple Objects 200", err)
		return
	}
	// That a missing key is no <Error> is an assumption: COS documents
	// quiet mode, but not its answer for a key that does not exist.
	if len(res.Errors) > 0 || len(res.DeletedObjects) > 0 {
		pr.add(Result{Name: name, Status: Fail, Expected: "no <Deleted> and no <Error> in quiet mode (a missing key is no error)",
			Got: fmt.Sprintf("%d deleted, %d errors", len(res.DeletedObjects), len(res.Errors)), Assumption: true})
		return
	}
	if _, err := pr.c.Object.Head(ctx, keys[0], nil); err == nil {
		pr.add(Result{Name: name, Status: Fail, Expected: "the keys gone", Got: "HEAD still finds " + keys[0], Assumption: true})
		return
	}
	pr.add(Result{Name: name, Status: OK, Detail: "keys gone, quiet answer", Assumption: true})
}
