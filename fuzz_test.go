package cos

import (
	"hash/crc64"
	"slices"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// FuzzParseParameters: any string value for any parameter gives a result
// or an error naming the parameter, never a panic or a leaked secret.
func FuzzParseParameters(f *testing.F) {
	for _, seed := range [][2]string{
		{"chunksize", "16MiB"}, {"chunksize", "0x10"}, {"chunksize", "-1"}, {"secure", "yes"},
		{"redirectexpiry", "20m"}, {"endpoint", "http://127.0.0.1:9100"}, {"endpoint", "://"},
		{"storageclass", "standard"}, {"maxconcurrency", "99999999999999999999"}, {"rootdirectory", "/a/b/"},
		{"maxbuffermemory", "1GiB"}, {"bucket", "a-1"}, {"region", "ap-guangzhou"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		m := baseConfig()
		m[name] = value
		_, err := ParseParameters(m)
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cr3t-value") {
			t.Fatalf("secret in error: %s", msg)
		}
		if !strings.HasPrefix(msg, "cos: ") {
			t.Fatalf("error does not say where it comes from: %s", msg)
		}
	})
}

// FuzzKeyMapping: a registry path survives the trip to a key and back.
func FuzzKeyMapping(f *testing.F) {
	f.Add("", "/a/b")
	f.Add("/root/", "/docker/registry/v2/blobs/sha256/ab/abcd/data")
	f.Add("x", "/.abc")
	f.Fuzz(func(t *testing.T, root, path string) {
		if !strings.HasPrefix(path, "/") || path == "/" || strings.Contains(path, "//") || strings.HasSuffix(path, "/") {
			return
		}
		d := &driver{root: strings.Trim(root, "/")}
		if strings.Contains(d.root, "//") {
			return
		}
		key := d.key(path)
		if strings.HasPrefix(key, "/") {
			t.Fatalf("key %q of %q starts with '/'", key, path)
		}
		if got := d.pathOf(key); got != path {
			t.Fatalf("pathOf(key(%q)) = %q (key %q, root %q)", path, got, key, d.root)
		}
	})
}

// FuzzWalkOrder: the walk over flat pages visits paths in distribution's
// path order, whatever the keys, with pages of 2 keys so that every
// buffering decision meets a page end.
func FuzzWalkOrder(f *testing.F) {
	f.Add("1.2/a,1.2.3/a,v1/a,v1-rc/a,a-b/c,a/b")
	f.Add("x,x/y,x-y,x.y/z")
	f.Add("a-b,a.b,a/c,a0,a/-/x,a/./y,a//z")
	f.Fuzz(func(t *testing.T, list string) {
		var keys []string
		for _, k := range strings.Split(list, ",") {
			if k == "" || strings.HasPrefix(k, "/") || strings.Contains(k, "//") || strings.Contains(k, "\x00") {
				continue
			}
			keys = append(keys, "p/"+k)
		}
		visited, _ := memWalk(t, keys, "/p", 2, nil)
		for i := 1; i < len(visited); i++ {
			if !pathLess(visited[i-1], visited[i]) && visited[i-1] != visited[i] {
				t.Fatalf("walk order broken: %q before %q in %q", visited[i-1], visited[i], visited)
			}
		}
	})
}

// memWalk walks keys (any order) from the path from (its key prefix is
// from without the leading slash) with listing pages of pageLen keys,
// returning the paths visited and the listings made.
func memWalk(t testing.TB, keys []string, from string, pageLen int, fn storagedriver.WalkFn) ([]string, int) {
	visited, flat, probes := memWalkHint(t, keys, from, "", pageLen, fn)
	return visited, flat + len(probes)
}

// memWalkHint is memWalk with a StartAfterHint, counting flat pages and
// the directories probed apart.
func memWalkHint(t testing.TB, keys []string, from, hint string, pageLen int, fn storagedriver.WalkFn) (visited []string, flat int, probes []string) {
	t.Helper()
	keys = slices.Clone(keys)
	slices.Sort(keys) // raw key order, as COS lists
	keys = slices.Compact(keys)
	prefix := strings.TrimPrefix(from, "/") + "/"
	list := func(marker string, maxKeys int, sub string) (*cossdk.BucketGetResult, error) {
		if sub == "" {
			flat++
		} else {
			probes = append(probes, sub)
		}
		res := &cossdk.BucketGetResult{}
		for _, k := range keys {
			if k <= marker || !strings.HasPrefix(k, prefix+sub) {
				continue
			}
			if len(res.Contents) == maxKeys {
				res.IsTruncated, res.NextMarker = true, res.Contents[maxKeys-1].Key
				break
			}
			res.Contents = append(res.Contents, cossdk.Object{Key: k})
		}
		return res, nil
	}
	w := newWalker(prefix, from, hint, func(fi storagedriver.FileInfo) error {
		visited = append(visited, fi.Path())
		if fn != nil {
			return fn(fi)
		}
		return nil
	}, list)
	w.pageLen = pageLen
	if _, err := w.run(); err != nil {
		t.Fatal(err)
	}
	return visited, flat, probes
}

// FuzzCRCCombine: combining part CRCs equals the CRC of the whole, and the
// CRC of a suffix comes back from the whole's and the prefix's.
func FuzzCRCCombine(f *testing.F) {
	f.Add([]byte("123456789"), []byte("abc"))
	f.Add([]byte{}, []byte("hello"))
	f.Add([]byte("hello"), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		whole := crc64.Checksum(append(slices.Clone(a), b...), crcTable)
		got := crcCombine(crc64.Checksum(a, crcTable), crc64.Checksum(b, crcTable), int64(len(b)))
		if got != whole {
			t.Fatalf("combine(%q, %q) = %d, want %d", a, b, got, whole)
		}
		if got, want := crcSuffix(whole, crc64.Checksum(a, crcTable), int64(len(b))), crc64.Checksum(b, crcTable); got != want {
			t.Fatalf("suffix(%q, %q) = %d, want %d", a, b, got, want)
		}
	})
}
