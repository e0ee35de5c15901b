package tencentcdn

import (
	"net/url"
	"testing"
	"time"
)

// TestSignMatchesTencentExamples holds each authentication type to a
// worked example of Tencent's documentation, an independent vector: the
// key, path and time of the page in, the page's hash and URL out.
//
//   - A: CDN "TypeA" (cloud.tencent.com/document/product/228/41623): key
//     dimtm5evg50ijsx2hvuwyfoiu65, /test.jpg, 1582791032
//     (2020-02-27 16:10:32 UTC+8), rand im1acp76sx9sdqe601v, uid 0 →
//     md5 3fbb88382c9356b6faaf9d68c7b2ae3a.
//   - B: the page of the same algorithm (md5(key timestamp uri),
//     YYYYMMDDHHMM in UTC+8; CDN 228/41871) in Tencent's EdgeOne docs
//     (cloud.tencent.com/document/product/1552/109330), the CDN page's own
//     example having no hash in the stored copy: key DvYmqE81E1F9R791H6lmht,
//     /foo.jpg, 2024-07-15 15:33:50 UTC+8 → 202407151533,
//     d1f0b51c6894231fc12e054fcc7f0b3e,
//     https://www.example.com/202407151533/d1f0b51c6894231fc12e054fcc7f0b3e/foo.jpg.
//   - C: EdgeOne "鉴权方式 C" (1552/109331), md5(key uri hex-timestamp):
//     key DvYmqE81E1F9R791H6lmht, /foo.jpg, 2024-07-15 15:43:06 UTC+8 →
//     6694d30a, 6688749e8906a726c12fe1be3aacd016,
//     https://www.example.com/6688749e8906a726c12fe1be3aacd016/6694d30a/foo.jpg.
//   - D: CDN "TypeD" (228/41625): key dimtm5evg50ijsx2hvuwyfoiu65,
//     /test.jpg, 1582791032 → 900a5049aa8ac1ab144527d9c2be4cea,
//     http://cloud.tencent.com/test.jpg?sign=900a5049aa8ac1ab144527d9c2be4cea&t=1582791032.
func TestSignMatchesTencentExamples(t *testing.T) {
	tests := []struct {
		name     string
		authType authType
		base     string
		key      string
		uri      string
		ts       time.Time
		rand     string
		want     string
	}{
		{"A", typeA, "http://cloud.tencent.com", "dimtm5evg50ijsx2hvuwyfoiu65", "/test.jpg", time.Unix(1582791032, 0), "im1acp76sx9sdqe601v",
			"http://cloud.tencent.com/test.jpg?sign=1582791032-im1acp76sx9sdqe601v-0-3fbb88382c9356b6faaf9d68c7b2ae3a"},
		{"B", typeB, "https://www.example.com", "DvYmqE81E1F9R791H6lmht", "/foo.jpg", time.Date(2024, 7, 15, 15, 33, 50, 0, beijing), "",
			"https://www.example.com/202407151533/d1f0b51c6894231fc12e054fcc7f0b3e/foo.jpg"},
		{"C", typeC, "https://www.example.com", "DvYmqE81E1F9R791H6lmht", "/foo.jpg", time.Date(2024, 7, 15, 15, 43, 6, 0, beijing), "",
			"https://www.example.com/6688749e8906a726c12fe1be3aacd016/6694d30a/foo.jpg"},
		{"D", typeD, "http://cloud.tencent.com", "dimtm5evg50ijsx2hvuwyfoiu65", "/test.jpg", time.Unix(1582791032, 0), "",
			"http://cloud.tencent.com/test.jpg?sign=900a5049aa8ac1ab144527d9c2be4cea&t=1582791032"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := url.Parse(tc.base)
			s := signer{base: base, authType: tc.authType, key: tc.key, signParam: "sign", timeParam: "t"}
			if got := s.sign(tc.uri, tc.ts, tc.rand); got != tc.want {
				t.Errorf("type %s:\n got %s\nwant %s", tc.name, got, tc.want)
			}
		})
	}
}

// TestSignEscapesThePathOnce: the path signed is the path sent, escaped
// once, and custom parameter names are used.
func TestSignEscapesThePathOnce(t *testing.T) {
	base, _ := url.Parse("https://cdn.example.com")
	s := signer{base: base, authType: typeD, key: "abcdef123", signParam: "auth", timeParam: "ts"}
	uri := (&url.URL{Path: "/a b/c"}).EscapedPath()
	got := s.sign(uri, time.Unix(1700000000, 0), "")
	want := "https://cdn.example.com/a%20b/c?auth=" + md5hex("abcdef123/a%20b/c1700000000") + "&ts=1700000000"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
