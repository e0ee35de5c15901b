package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{"defaults", nil, "", func(t *testing.T, c config) {
			o := c.options
			if o.Addr != "127.0.0.1:9100" || o.Dir != "" || o.Bucket != costest.DefaultBucket || o.Region != costest.DefaultRegion ||
				o.Credentials[0].SecretID != costest.DefaultSecretID || o.Credentials[0].SecretKey != costest.DefaultSecretKey || c.adminAddr != "" {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{"all flags", []string{"-addr", ":0", "-data", "/d", "-bucket", "b-1", "-region", "ap-beijing", "-secret-id", "id", "-secret-key", "key",
			"-latency", "5ms", "-bandwidth", "2.5", "-error-rate", "0.1", "-drop-rate", "1", "-complete-error-rate", "0.25",
			"-list-lag", "1s", "-admin-addr", ":0"}, "", func(t *testing.T, c config) {
			f := c.options.Faults
			if f.Bandwidth != 2_500_000 || f.Latency != 5*time.Millisecond || f.ErrorRate != 0.1 || f.DropRate != 1 ||
				f.CompleteErrorRate != 0.25 || f.ListLag != time.Second {
				t.Errorf("faults = %+v", f)
			}
			if c.options.Dir != "/d" || c.options.Bucket != "b-1" || c.options.Credentials[0].SecretKey != "key" || c.adminAddr != ":0" {
				t.Errorf("config = %+v", c)
			}
		}},
		{"error rate above 1", []string{"-error-rate", "1.5"}, "-error-rate 1.5: must be a fraction between 0 and 1", nil},
		{"negative drop rate", []string{"-drop-rate", "-0.1"}, "-drop-rate -0.1", nil},
		{"complete error rate defaults to 0", nil, "", func(t *testing.T, c config) {
			if c.options.Faults.CompleteErrorRate != 0 {
				t.Errorf("CompleteErrorRate = %v", c.options.Faults.CompleteErrorRate)
			}
		}},
		{"complete error rate of 1", []string{"-complete-error-rate", "1"}, "", func(t *testing.T, c config) {
			if c.options.Faults.CompleteErrorRate != 1 {
				t.Errorf("CompleteErrorRate = %v", c.options.Faults.CompleteErrorRate)
			}
		}},
		{"complete error rate above 1", []string{"-complete-error-rate", "1.01"}, "-complete-error-rate 1.01: must be a fraction between 0 and 1", nil},
		{"negative complete error rate", []string{"-complete-error-rate", "-0.5"}, "-complete-error-rate -0.5", nil},
		{"complete error rate NaN", []string{"-complete-error-rate", "NaN"}, "-complete-error-rate NaN", nil},
		{"complete error rate not a number", []string{"-complete-error-rate", "half"}, "invalid value", nil},
		{"negative bandwidth", []string{"-bandwidth", "-1"}, "-bandwidth -1", nil},
		{"negative latency", []string{"-latency", "-1s"}, "must not be negative", nil},
		{"empty secret", []string{"-secret-key", ""}, "must not be empty", nil},
		{"stray argument", []string{"serve"}, `unexpected argument "serve"`, nil},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined", nil},
		{"misbehavior", []string{"-omit-crc64", "-unordered-listing", "-deny", "CopyObject", "-deny", "UploadPartCopy",
			"-refuse-long-suffix-range", "-ignore-if-match", "-ignore-copy-source-if-match", "-refuse-self-part-copy",
			"-lifecycle-abort-days", "2", "-lifecycle-prefix", "registry/"}, "", func(t *testing.T, c config) {
			m, b := c.options.Misbehavior, c.options.BucketConfig
			if !m.OmitCRC64 || !m.UnorderedListing || strings.Join(m.Deny, ",") != "CopyObject,UploadPartCopy" ||
				!m.RefuseLongSuffixRange || !m.IgnoreIfMatch || !m.IgnoreCopySourceIfMatch || !m.RefuseSelfPartCopy {
				t.Errorf("misbehavior = %+v", m)
			}
			if b.AbortIncompleteUploadDays != 2 || b.LifecyclePrefix != "registry/" {
				t.Errorf("bucket config = %+v", b)
			}
		}},
		{"discard", []string{"-discard"}, "", func(t *testing.T, c config) {
			if !c.options.Discard {
				t.Errorf("Discard = false")
			}
		}},
		{"discard with a data directory", []string{"-discard", "-data", "/d"}, "-discard keeps sizes and checksums in memory: it cannot be used with -data", nil},
		{"bucket created", []string{"-bucket-created", "2023-01-01"}, "", func(t *testing.T, c config) {
			if want := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC); !c.options.BucketCreated.Equal(want) {
				t.Errorf("BucketCreated = %v, want %v", c.options.BucketCreated, want)
			}
		}},
		{"bad bucket-created", []string{"-bucket-created", "2023/01/01"}, `invalid value "2023/01/01" for flag -bucket-created`, nil},
		{"deny of an unknown operation", []string{"-deny", "PutObjectCopy"}, `unknown operation "PutObjectCopy" (known: HeadBucket,`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestRunPrintsOneLineAndServesStats(t *testing.T) {
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Use a fixed free admin port: listen, note it, release it.
	cfg.adminAddr = testenv.FreeAddr(t)
	out := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out) }()
	line, ok := out.WaitFor("\n", 30*time.Second)
	if !ok {
		t.Fatalf("run printed no line within 30s: %q", line)
	}
	for _, want := range []string{"endpoint=http://127.0.0.1:", "bucket=" + costest.DefaultBucket, "region=" + costest.DefaultRegion,
		"secret-id=" + costest.DefaultSecretID, "secret-key=" + costest.DefaultSecretKey} {
		if !strings.Contains(line, want) {
			t.Errorf("start line %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("start line is not one line: %q", line)
	}
	endpoint := strings.Fields(strings.SplitN(line, "endpoint=", 2)[1])[0]
	if resp, err := http.Get(endpoint + "/"); err == nil {
		resp.Body.Close() // an unsigned request: counted as ListObjects
	}
	service := strings.Fields(strings.SplitN(line, "service=", 2)[1])[0]
	if resp, err := http.Get(service + "/"); err == nil {
		resp.Body.Close() // an unsigned request: counted as GetService
	}
	resp, err := http.Get("http://" + cfg.adminAddr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st costest.Stats
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Count("ListObjects") != 1 || st.Status["ListObjects 403"] != 1 || st.Status["GetService 403"] != 1 {
		t.Errorf("admin stats = %+v", st)
	}
	resp, err = http.Post("http://"+cfg.adminAddr+"/stats/reset", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %v %v", err, resp)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCompleteErrorRateFlag runs an emulator configured by
// -complete-error-rate 1: a copy is answered 200 with an <Error> body and
// not applied.
func TestCompleteErrorRateFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-complete-error-rate", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartEmulator(t, cfg.options)
	c := srv.Client()
	ctx := context.Background()
	if _, err := c.Object.Put(ctx, "src", strings.NewReader("data"), nil); err != nil {
		t.Fatal(err)
	}
	_, resp, err := c.Object.Copy(ctx, "dst", strings.TrimPrefix(srv.URL, "http://")+"/src", nil)
	if err == nil {
		t.Fatalf("copy succeeded (status %d) with -complete-error-rate 1", resp.StatusCode)
	}
	if got := srv.Stats().Faults["complete-error"]; got < 1 {
		t.Errorf("complete-error faults = %d, want at least 1", got)
	}
	if _, err := c.Object.Head(ctx, "dst", nil); err == nil {
		t.Errorf("the failed copy was applied")
	}
}

// TestIdentityFlags configures the emulated STS and metadata service from
// flags and checks their refusals.
func TestIdentityFlags(t *testing.T) {
	const role = "qcs::cam::uin/100000000001:roleName/registry"
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-sts-addr", "127.0.0.1:0", "-metadata-addr", "127.0.0.1:0",
		"-role", "qcs::cam::uin/2:roleName/cross", "-oidc-role", role, "-oidc-provider", "cls-local", "-oidc-token", "tok",
		"-instance-role", "registry-cvm", "-key-lifetime", "10m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	id := cfg.options.Identity
	if id == nil || len(id.Roles) != 2 || id.Roles[1].ARN != role || id.Roles[1].ProviderID != "cls-local" ||
		id.Roles[1].WebIdentityTokens[0] != "tok" || id.InstanceRole != "registry-cvm" || id.Lifetime != 10*time.Minute {
		t.Fatalf("identity options = %+v", id)
	}
	srv := testenv.StartEmulator(t, cfg.options)
	resp, err := http.Get(srv.MetadataURL + "/latest/meta-data/cam/security-credentials/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "registry-cvm" {
		t.Fatalf("instance role listing %q, want registry-cvm", body)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-oidc-role", role, "-sts-addr", ":0"}, "-oidc-role needs -oidc-provider and -oidc-token"},
		{[]string{"-instance-role", "r"}, "need -sts-addr or -metadata-addr"},
		{[]string{"-sts-addr", ":0", "-key-lifetime", "-1s"}, "-key-lifetime must not be negative"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
