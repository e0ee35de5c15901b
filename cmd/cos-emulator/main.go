// Command cos-emulator serves the costest COS emulator on a local address,
// for running a registry or any COS client against it without a Tencent
// Cloud account.
//
//	cos-emulator -addr 127.0.0.1:9100 -data /var/lib/cos-emulator
//
// It prints the endpoint, the service endpoint (GET Service, listing
// buckets: on COS another host than the buckets), bucket, region and
// credentials on one line at start, and stops cleanly on SIGINT or SIGTERM. With -admin-addr it also
// serves GET /stats (request counters as JSON) and POST /stats/reset.
//
// With -sts-addr or -metadata-addr it also serves the emulated STS and CVM
// instance metadata service, whose temporary keys its COS side accepts:
//
//	cos-emulator -sts-addr 127.0.0.1:9101 -metadata-addr 127.0.0.1:9102 \
//	  -oidc-role qcs::cam::uin/100000000001:roleName/registry -oidc-provider cls-local \
//	  -oidc-token "$(cat token)" -instance-role registry-cvm
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/registry-cos/cos/costest"
)

// config is the parsed command line.
type config struct {
	options   costest.Options
	adminAddr string
}

// parseFlags reads and validates the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("cos-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       config
		bandwidth float64
		secretID  string
		secretKey string
	)
	o := &cfg.options
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:9100", "listen `address`")
	fs.StringVar(&o.ServiceAddr, "service-addr", "127.0.0.1:0", "`address` of the service endpoint answering GET Service (list buckets); give it to clients as their service URL (Go SDK BaseURL.ServiceURL, Node.js SDK ServiceDomain)")
	fs.StringVar(&o.Dir, "data", "", "data `directory`; empty keeps everything in memory")
	fs.BoolVar(&o.Discard, "discard", false, "keep only the sizes and checksums of blobs over 1 MiB (one PUT or part), for benchmarks of very large uploads: reading their bytes answers 400 DiscardedContent; not with -data")
	fs.StringVar(&o.Bucket, "bucket", costest.DefaultBucket, "bucket (name-appid) created at start and served to non-bucket hosts")
	fs.StringVar(&o.Region, "region", costest.DefaultRegion, "region of the bucket")
	fs.Func("bucket-created", "`date` (2006-01-02) the bucket was created; default today. COS refuses path-style S3 requests to buckets created from 2024-01-01: an earlier date lets AWS SDKs and the s3-aws driver (forcepathstyle) in", func(v string) error {
		t, err := time.Parse(time.DateOnly, v)
		o.BucketCreated = t
		return err
	})
	fs.StringVar(&secretID, "secret-id", costest.DefaultSecretID, "accepted SecretId")
	fs.StringVar(&secretKey, "secret-key", costest.DefaultSecretKey, "accepted SecretKey")
	fs.DurationVar(&o.Faults.Latency, "latency", 0, "`duration` added before answering each request")
	fs.Float64Var(&bandwidth, "bandwidth", 0, "per-connection body transfer cap in `MBPS` (1 MB = 1e6 bytes); 0 = none")
	fs.Float64Var(&o.Faults.ErrorRate, "error-rate", 0, "`fraction` of requests answered 500 InternalError or 503 SlowDown")
	fs.Float64Var(&o.Faults.DropRate, "drop-rate", 0, "`fraction` of requests whose connection is dropped mid-body")
	fs.Float64Var(&o.Faults.CompleteErrorRate, "complete-error-rate", 0,
		"`fraction` of Complete Multipart Upload, PUT Object - Copy and Upload Part - Copy requests answered 200 with an <Error> body, not applied")
	fs.DurationVar(&o.Faults.ListLag, "list-lag", 0, "`duration` by which listings lag behind writes")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "", "`address` serving GET /stats and POST /stats/reset; empty = off")
	var identity costest.IdentityOptions
	var oidc costest.Role
	fs.StringVar(&identity.STSAddr, "sts-addr", "", "`address` serving the emulated STS (AssumeRole, AssumeRoleWithWebIdentity); empty = off")
	fs.StringVar(&identity.MetadataAddr, "metadata-addr", "", "`address` serving the emulated CVM instance metadata service; empty = off")
	fs.Func("role", "`ARN` of a role any accepted key may assume with AssumeRole (repeatable)", func(arn string) error {
		identity.Roles = append(identity.Roles, costest.Role{ARN: arn})
		return nil
	})
	fs.StringVar(&oidc.ARN, "oidc-role", "", "`ARN` of the role AssumeRoleWithWebIdentity hands out (TKE pod identity)")
	fs.StringVar(&oidc.ProviderID, "oidc-provider", "", "`ID` of the OIDC provider -oidc-role trusts (TKE_PROVIDER_ID)")
	oidcToken := fs.String("oidc-token", "", "web identity `token` -oidc-role accepts")
	fs.StringVar(&identity.InstanceRole, "instance-role", "", "`name` of the CAM role bound to the emulated CVM instance")
	fs.DurationVar(&identity.Lifetime, "key-lifetime", 0, "`duration` of every temporary key issued; 0 = what the request asks (STS) or 2h (metadata)")
	fs.StringVar(&o.BucketConfig.Versioning, "versioning", "", "versioning `status` reported by GET Bucket versioning: Enabled, Suspended or empty")
	fs.IntVar(&o.BucketConfig.AbortIncompleteUploadDays, "lifecycle-abort-days", 0, "report a lifecycle rule aborting incomplete multipart uploads after `days`; 0 = no lifecycle rule")
	fs.BoolVar(&o.BucketConfig.Accelerate, "accelerate", false, "report global acceleration as enabled")
	fs.StringVar(&o.BucketConfig.LifecyclePrefix, "lifecycle-prefix", "", "key `prefix` of the -lifecycle-abort-days rule; empty = the whole bucket")
	// Misbehavior, to see `registry-cos check` notice it.
	fs.BoolVar(&o.Misbehavior.OmitCRC64, "omit-crc64", false, "misbehave: drop x-cos-hash-crc64ecma from every answer")
	fs.BoolVar(&o.Misbehavior.UnorderedListing, "unordered-listing", false, "misbehave: list each page's objects in reverse order")
	fs.BoolVar(&o.Misbehavior.RefuseLongSuffixRange, "refuse-long-suffix-range", false, "misbehave: answer Range: bytes=-N with N beyond the object's size 416 InvalidRange")
	fs.BoolVar(&o.Misbehavior.IgnoreIfMatch, "ignore-if-match", false, "misbehave: ignore If-Match on GET and HEAD Object")
	fs.BoolVar(&o.Misbehavior.IgnoreCopySourceIfMatch, "ignore-copy-source-if-match", false, "misbehave: ignore x-cos-copy-source-If-Match on copies")
	fs.BoolVar(&o.Misbehavior.RefuseSelfPartCopy, "refuse-self-part-copy", false, "misbehave: answer an Upload Part - Copy from the upload's own key 400 InvalidRequest")
	fs.Func("deny", "misbehave: answer `operation` (as named in /stats, such as CopyObject) 403 AccessDenied (repeatable)", func(op string) error {
		if !slices.Contains(costest.Operations(), op) {
			return fmt.Errorf("unknown operation %q (known: %s)", op, strings.Join(costest.Operations(), ", "))
		}
		o.Misbehavior.Deny = append(o.Misbehavior.Deny, op)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Discard && o.Dir != "" {
		return config{}, errors.New("-discard keeps sizes and checksums in memory: it cannot be used with -data")
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"-error-rate", o.Faults.ErrorRate}, {"-drop-rate", o.Faults.DropRate}, {"-complete-error-rate", o.Faults.CompleteErrorRate}} {
		// The negated test also refuses NaN, which compares false with
		// everything and would otherwise pass as a rate.
		if name, v := r.name, r.v; !(v >= 0 && v <= 1) {
			return config{}, fmt.Errorf("%s %v: must be a fraction between 0 and 1", name, v)
		}
	}
	if bandwidth < 0 {
		return config{}, fmt.Errorf("-bandwidth %v: must be 0 (no cap) or a positive number of MB per second", bandwidth)
	}
	o.Faults.Bandwidth = int64(bandwidth * 1e6)
	if bandwidth > 0 && o.Faults.Bandwidth < 1 {
		return config{}, fmt.Errorf("-bandwidth %v: below one byte per second", bandwidth)
	}
	if o.Faults.Latency < 0 || o.Faults.ListLag < 0 {
		return config{}, errors.New("-latency and -list-lag must not be negative")
	}
	switch o.BucketConfig.Versioning {
	case "", "Enabled", "Suspended":
	default:
		return config{}, fmt.Errorf("-versioning %q: want Enabled, Suspended or empty", o.BucketConfig.Versioning)
	}
	if o.BucketConfig.AbortIncompleteUploadDays < 0 {
		return config{}, errors.New("-lifecycle-abort-days must not be negative")
	}
	if secretID == "" || secretKey == "" {
		return config{}, errors.New("-secret-id and -secret-key must not be empty")
	}
	o.Credentials = []costest.Credential{{SecretID: secretID, SecretKey: secretKey}}
	if oidc.ARN != "" {
		if oidc.ProviderID == "" || *oidcToken == "" {
			return config{}, errors.New("-oidc-role needs -oidc-provider and -oidc-token")
		}
		oidc.WebIdentityTokens = []string{*oidcToken}
		identity.Roles = append(identity.Roles, oidc)
	}
	if identity.Lifetime < 0 {
		return config{}, errors.New("-key-lifetime must not be negative")
	}
	if identity.STSAddr != "" || identity.MetadataAddr != "" {
		o.Identity = &identity
	} else if len(identity.Roles) > 0 || identity.InstanceRole != "" {
		return config{}, errors.New("-role, -oidc-role and -instance-role need -sts-addr or -metadata-addr")
	}
	return cfg, nil
}

// adminHandler serves the request counters.
func adminHandler(h *costest.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/stats" && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(h.Stats())
		case r.URL.Path == "/stats/reset" && r.Method == http.MethodPost:
			h.ResetStats()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "GET /stats or POST /stats/reset", http.StatusNotFound)
		}
	})
}

// run serves until ctx is done.
func run(ctx context.Context, cfg config, stdout io.Writer) error {
	srv, err := costest.NewServer(cfg.options)
	if err != nil {
		return err
	}
	defer srv.Close()
	if cfg.adminAddr != "" {
		ln, err := net.Listen("tcp", cfg.adminAddr)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		admin := &http.Server{Handler: adminHandler(srv.Handler), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(ln)
		defer admin.Close()
	}
	identity := ""
	if cfg.options.Identity != nil {
		identity = fmt.Sprintf(" sts=%s metadata=%s", srv.STSURL, srv.MetadataURL)
	}
	fmt.Fprintf(stdout, "cos-emulator: endpoint=%s service=%s bucket=%s region=%s secret-id=%s secret-key=%s%s\n",
		srv.URL, srv.ServiceURL, srv.Bucket, srv.Region, srv.SecretID, srv.SecretKey, identity)
	<-ctx.Done()
	return nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cos-emulator:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cos-emulator:", err)
		os.Exit(1)
	}
}
