package costest

import "testing"

// TestSignVectors pins the q-sign algorithm to the vectors published with
// the COS SDK.
func TestSignVectors(t *testing.T) {
	tests := []struct {
		name               string
		secretKey, keyTime string
		method, path       string
		params, headers    map[string][]string
		wantHTTPStringSHA1 string
		wantSignature      string
	}{
		{
			name:      "auth_test header signature",
			secretKey: "AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM", keyTime: "1480932292;1481012292",
			method: "PUT", path: "/testfile2",
			headers: map[string][]string{
				"host":                {"testbucket-125000000.cos.ap-guangzhou.myqcloud.com"},
				"x-cos-content-sha1":  {"db8ac1c259eb89d4a131b253bacfca5f319d54f2"},
				"x-cos-stroage-class": {"nearline"},
			},
			wantSignature: "ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a",
		},
		{
			name:      "presign without query",
			secretKey: "ZfbOA78asKUYBcXFrJD0a1I*******", keyTime: "1622702557;1622706157",
			method: "PUT", path: "/test.jpg",
			wantSignature: "820975b5a8eccce9455b94d4ebed14d66654bf3c",
		},
		{
			name:      "presign with query",
			secretKey: "ZfbOA78asKUYBcXFrJD0a1I*******", keyTime: "1622702557;1622706157",
			method: "PUT", path: "/test.jpg",
			params:        map[string][]string{"test": {"params"}},
			wantSignature: "7757e84ed5f8953eafc30afcd2a5d1ad68e00d67",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := formatString(tt.method, tt.path, tt.params, tt.headers)
			_, sig := sign(tt.secretKey, tt.keyTime, tt.keyTime, hs)
			if sig != tt.wantSignature {
				t.Errorf("signature = %s, want %s (HttpString %q)", sig, tt.wantSignature, hs)
			}
		})
	}
}

func TestCOSURLEncode(t *testing.T) {
	for in, want := range map[string]string{
		"abc-_.~": "abc-_.~",
		"a b+c":   "a%20b%2Bc",
		"!'()*":   "%21%27%28%29%2A",
		"a/b;c":   "a%2Fb%3Bc",
		"腾":       "%E8%85%BE",
	} {
		if got := cosURLEncode(in); got != want {
			t.Errorf("cosURLEncode(%q) = %q, want %q", in, got, want)
		}
	}
}
