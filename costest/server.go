package costest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults used when Options leave a field empty.
const (
	// DefaultBucket is the bucket a Handler creates at start.
	DefaultBucket = "registry-1250000000"
	// DefaultRegion is the region the default bucket lives in.
	DefaultRegion = "ap-guangzhou"
	// DefaultSecretID is the SecretId of the default credential. It is a
	// well-known test value, never a real key.
	DefaultSecretID = "AKIDcostestEXAMPLE"
	// DefaultSecretKey is the SecretKey of the default credential.
	DefaultSecretKey = "costestSecretKeyEXAMPLE"
)

// Options configure a Handler or a Server. The zero value is a memory-backed
// emulator holding DefaultBucket in DefaultRegion that accepts
// DefaultSecretID/DefaultSecretKey.
type Options struct {
	// Bucket is the bucket ("name-appid") created at start and served to
	// requests whose Host names no bucket. Default DefaultBucket.
	Bucket string
	// Region is the region of Bucket. Default DefaultRegion.
	Region string
	// BucketCreated is when Bucket was created; default now. COS refuses
	// path-style requests (cos.<region>.myqcloud.com/<bucket>/<key>) to
	// buckets created from 2024-01-01 on (sigv4.go): an earlier date
	// stands for an older bucket, which S3 clients may address path-style
	// (as they must a local emulator, whose address names no bucket).
	BucketCreated time.Time
	// Credentials are the accepted keys. Default: one credential with
	// DefaultSecretID and DefaultSecretKey.
	Credentials []Credential
	// Dir selects the backend: "" keeps everything in memory; otherwise
	// objects and in-progress multipart uploads are stored under Dir and
	// survive a restart on the same Dir.
	Dir string
	// Addr is the listen address of NewServer. Default "127.0.0.1:0".
	Addr string
	// ServiceAddr is the listen address of NewServer's service endpoint
	// (Server.ServiceURL). Default "127.0.0.1:0".
	ServiceAddr string
	// Faults are the faults injected from the start.
	Faults Faults
	// Seed seeds the random source of fault decisions; 0 uses the time.
	Seed int64
	// Identity, when set, turns on the emulated STS and CVM metadata
	// service (sts.go, metadata.go); NewServer serves them at STSURL and
	// MetadataURL.
	Identity *IdentityOptions
	// BucketConfig is the bucket configuration reported (bucketconfig.go).
	BucketConfig BucketConfig
	// Misbehavior breaks COS rules on purpose, for tests of `check`
	// (misbehavior.go).
	Misbehavior Misbehavior
	// MaxParts, when not 0, lowers COS's part-number limit (10,000), so
	// that tests reach it at small sizes. Test-only: COS has no such knob.
	MaxParts int
	// Discard keeps only the sizes and checksums of blobs larger than
	// DiscardThreshold, in memory: objects of any size then cost no
	// memory or disk, their CRC64, MD5 and ETags stay right, and a read
	// of their bytes answers an error that says they were discarded. For
	// benchmarks of very large uploads; not with Dir.
	Discard bool
}

// DiscardThreshold is the largest blob (one PUT, one part) Discard keeps
// whole: upload-state records, manifests and other small objects stay
// readable.
const DiscardThreshold = 1 << 20

// Handler is the COS emulator as an http.Handler. It is safe for concurrent
// use.
type Handler struct {
	bucket, region string
	credentials    map[string]Credential
	store          *store
	backend        backend
	faults         *faultState
	stats          *statsCollector
	identity       *identityState
	settings       bucketSettings
	requestSeq     atomic.Uint64
	maxParts       int
}

// NewHandler builds an emulator. The handler needs no listener: tests may
// call ServeHTTP directly. Call Close to release the backend.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if !validBucketName(opts.Bucket) {
		return nil, fmt.Errorf("costest: bucket %q is not of the form name-appid (name of a-z, 0-9 and '-', appid numeric)", opts.Bucket)
	}
	if len(opts.Credentials) == 0 {
		opts.Credentials = []Credential{{SecretID: DefaultSecretID, SecretKey: DefaultSecretKey}}
	}
	h := &Handler{
		bucket:      opts.Bucket,
		region:      opts.Region,
		credentials: map[string]Credential{},
		faults:      newFaultState(opts.Faults, opts.Seed),
		stats:       newStatsCollector(),
		identity:    newIdentityState(opts.Identity),
		settings:    bucketSettings{config: opts.BucketConfig, misbehavior: opts.Misbehavior},
	}
	for _, c := range opts.Credentials {
		if c.SecretID == "" || c.SecretKey == "" {
			return nil, errors.New("costest: a credential needs both SecretID and SecretKey")
		}
		h.credentials[c.SecretID] = c
	}
	if opts.MaxParts < 0 || opts.MaxParts > maxPartNumber {
		return nil, fmt.Errorf("costest: MaxParts %d: want 0 (COS's %d) to %d", opts.MaxParts, maxPartNumber, maxPartNumber)
	}
	h.maxParts = cmp.Or(opts.MaxParts, maxPartNumber)
	switch {
	case opts.Discard && opts.Dir != "":
		return nil, errors.New("costest: Discard keeps sizes and checksums in memory; it cannot be used with Dir")
	case opts.Discard:
		h.backend = newDiscardBackend(DiscardThreshold)
	case opts.Dir == "":
		h.backend = newMemoryBackend()
	default:
		be, err := newDiskBackend(opts.Dir)
		if err != nil {
			return nil, err
		}
		h.backend = be
	}
	st, err := newStore(h.backend, time.Now, func() time.Duration { return h.faults.get().ListLag })
	if err != nil {
		h.backend.Close()
		return nil, err
	}
	h.store = st
	created := opts.BucketCreated
	if created.IsZero() {
		created = time.Now()
	}
	if _, err := st.createBucket(&bucketRecord{Name: opts.Bucket, Region: opts.Region, Created: created.UTC()}); err != nil {
		h.backend.Close()
		return nil, err
	}
	return h, nil
}

// SetFaults replaces the injected faults; safe while requests are served.
func (h *Handler) SetFaults(f Faults) { h.faults.set(f) }

// Faults returns the faults currently injected.
func (h *Handler) Faults() Faults { return h.faults.get() }

// Stats returns a copy of the request counters.
func (h *Handler) Stats() Stats { return h.stats.snapshot() }

// ResetStats zeroes the request counters.
func (h *Handler) ResetStats() { h.stats.reset() }

// Close releases the backend. The handler must not be used afterwards.
func (h *Handler) Close() error { return h.backend.Close() }

// request is one request being served.
type request struct {
	h         *Handler
	w         *responseWriter
	r         *http.Request
	query     url.Values
	op        string
	bucket    string
	key       string
	requestID string
	now       time.Time
	// s3 marks a request signed with AWS SigV4 (sigv4.go): r is then its
	// s3View, signed the request as it arrived, and pathBucket the bucket
	// it named in its path (path-style), if it did.
	s3         bool
	pathBucket string
	signed     *http.Request
}

// ServeHTTP answers one COS request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serveHTTP(w, r, false) }

// serveHTTP answers one request; service marks a request that reached the
// service endpoint (Server.ServiceURL), which answers GET Service whatever
// its Host.
func (h *Handler) serveHTTP(w http.ResponseWriter, r *http.Request, service bool) {
	faults := h.faults.get()
	query := parseQuery(r.URL.RawQuery)
	view, s3, pathBucket := r, false, ""
	if isSigV4(r, query) {
		s3 = true
		view, pathBucket = h.s3View(r)
	}
	op := operationOf(view, query, service)
	if h.misbehavior().OmitCRC64 {
		w = crcDroppingWriter{w}
	}
	h.stats.request(op)
	body := &requestBody{body: r.Body, throttle: newThrottle(faults.Bandwidth)}
	rw := &responseWriter{w: w, throttle: newThrottle(faults.Bandwidth), dropAfter: -1}
	defer func() { h.stats.finish(op, rw.status, body.n, rw.written) }()
	r.Body = body
	view.Body = body

	q := &request{h: h, w: rw, r: view, signed: r, s3: s3, pathBucket: pathBucket, query: query, op: op, requestID: h.newRequestID()}
	hdr := rw.Header()
	hdr.Set("Server", "tencent-cos")
	hdr.Set("x-cos-request-id", q.requestID)
	if h.injectRequestFaults(q, faults, body) {
		return
	}
	q.now = time.Now()
	if err := h.serve(q); err != nil {
		q.writeError(err)
	}
}

// serve authenticates a request, finds its bucket and runs its operation.
func (h *Handler) serve(q *request) error {
	if q.s3 {
		if err := h.authenticateV4(q.signed, q.query, time.Now(), &q.r.Body); err != nil {
			return err
		}
	} else if err := h.authenticate(q.r, q.query, time.Now()); err != nil {
		return err
	}
	if err := h.denied(q.op); err != nil {
		return err
	}
	if q.op != opGetService && namesNoBucket(q.r.Host) {
		// COS's exact answer here is not documented (no Tencent page or
		// SDK shows one); any refusal keeps a test from passing on a host
		// real COS cannot route.
		return newError(http.StatusBadRequest, "InvalidURI", "The host "+q.r.Host+" names no bucket: send bucket and object requests to <bucket>.cos.<region>.myqcloud.com (or the bucket's internal or tencentcos.cn host).")
	}
	bucket, region, named := bucketFromHost(q.r.Host)
	if !named {
		bucket, region = h.bucket, h.region
		if q.pathBucket != "" {
			// A path-style name no COS host carries: no such bucket.
			bucket = q.pathBucket
		}
	}
	q.bucket = bucket
	// The key is the decoded path without its leading slash. A request
	// target of "*" or an absolute URL without a path has no slash to drop.
	q.key = strings.TrimPrefix(q.r.URL.Path, "/")
	switch q.op {
	case opPutBucket:
		return q.putBucket(region)
	case opGetService:
		return q.getService()
	}
	rec, ok := h.store.bucket(bucket)
	// A host naming the bucket in another region does not reach it.
	if !ok || (named && region != rec.Region && region != "accelerate") {
		return errNoSuchBucket()
	}
	if q.pathBucket != "" && !rec.Created.Before(pathStyleCutoff) {
		return errPathStyleForbidden()
	}
	if err := q.unsupportedS3(); err != nil {
		return err
	}
	switch q.op {
	case opHeadBucket:
		return q.headBucket()
	case opListObjects:
		return q.listObjects()
	case opPutObject:
		return q.putObject()
	case opGetObject:
		return q.getObject(false)
	case opHeadObject:
		return q.getObject(true)
	case opDeleteObject:
		return q.deleteObject()
	case opDeleteMultipleObjects:
		return q.deleteMultiple()
	case opInitiateMultipartUpload:
		return q.initiateUpload()
	case opUploadPart:
		return q.uploadPart()
	case opUploadPartCopy:
		return q.uploadPartCopy()
	case opCompleteMultipartUpload:
		return q.completeUpload()
	case opAbortMultipartUpload:
		return q.abortUpload()
	case opListMultipartUploads:
		return q.listUploads()
	case opListParts:
		return q.listParts()
	case opCopyObject:
		return q.copyObject()
	case opAppendObject:
		return q.appendObject()
	case opGetBucketVersioning, opGetBucketLifecycle, opGetBucketAccelerate, opGetBucketLocation,
		opPutBucketVersioning, opPutBucketLifecycle, opPutBucketAccelerate, opDeleteBucketLifecycle:
		return q.serveBucketConfig()
	}
	if q.r.Method == http.MethodGet || q.r.Method == http.MethodPut || q.r.Method == http.MethodPost ||
		q.r.Method == http.MethodDelete || q.r.Method == http.MethodHead {
		return newError(http.StatusNotImplemented, "NotImplemented", "The costest emulator does not implement this request.")
	}
	return newError(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
}

// Server is a Handler listening on a local address, in the manner of
// httptest.Server.
type Server struct {
	*Handler
	// URL is the base URL of the server, "http://127.0.0.1:PORT"; use it as
	// the SDK's BucketURL.
	URL string
	// Bucket, Region, SecretID and SecretKey describe the default bucket
	// and the first credential.
	Bucket, Region, SecretID, SecretKey string
	// ServiceURL is the base URL of the service endpoint, which answers GET
	// Service (List Buckets) whatever the Host: on COS it is another host
	// (service.cos.myqcloud.com) than the buckets. Use it as the SDK's
	// BaseURL.ServiceURL (the Node.js SDK's ServiceDomain).
	ServiceURL string
	// STSURL and MetadataURL are the base URLs of the emulated STS and CVM
	// metadata service, set when Options.Identity is.
	STSURL, MetadataURL string

	listener      net.Listener
	server        *http.Server
	serviceServer *http.Server
	done          chan struct{}

	identityServers []*http.Server

	// sessionToken is the first credential's, which Client sends.
	sessionToken string
	client       serverClient
}

// NewServer starts an emulator on opts.Addr (default "127.0.0.1:0").
func NewServer(opts Options) (*Server, error) {
	h, err := NewHandler(opts)
	if err != nil {
		return nil, err
	}
	ln, err := listenLocal(opts.Addr)
	if err != nil {
		h.Close()
		return nil, err
	}
	s := &Server{
		Handler:  h,
		URL:      "http://" + ln.Addr().String(),
		Bucket:   h.bucket,
		Region:   h.region,
		listener: ln,
		server:   newHTTPServer(h),
		done:     make(chan struct{}),
	}
	for _, c := range opts.Credentials {
		s.SecretID, s.SecretKey, s.sessionToken = c.SecretID, c.SecretKey, c.SessionToken
		break
	}
	if s.SecretID == "" {
		s.SecretID, s.SecretKey = DefaultSecretID, DefaultSecretKey
	}
	serviceLn, err := listenLocal(opts.ServiceAddr)
	if err != nil {
		ln.Close()
		h.Close()
		return nil, err
	}
	s.ServiceURL = "http://" + serviceLn.Addr().String()
	s.serviceServer = newHTTPServer(h.ServiceHandler())
	go s.serviceServer.Serve(serviceLn)
	if opts.Identity != nil {
		if err := s.startIdentityServers(opts.Identity); err != nil {
			s.serviceServer.Close()
			s.server.Close()
			h.Close()
			return nil, err
		}
	}
	go func() {
		defer close(s.done)
		s.server.Serve(ln)
	}()
	return s, nil
}

// BucketHost returns the virtual-hosted name of the default bucket,
// "<bucket>.cos.<region>.myqcloud.com", for clients that send a real-looking
// Host (cos.Client.Host) to this server.
func (s *Server) BucketHost() string { return bucketHost(s.Bucket, s.Region) }

// Close stops the server, closing every connection, and releases the
// backend.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.server.Shutdown(ctx); err != nil {
		s.server.Close()
	}
	<-s.done
	s.serviceServer.Close()
	s.closeClient()
	for _, is := range s.identityServers {
		is.Close()
	}
	return s.Handler.Close()
}

// listenLocal listens on addr, "127.0.0.1:0" (a free local port) when
// empty.
func listenLocal(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("costest: %w", err)
	}
	return ln, nil
}

// newHTTPServer serves h without logging: a test's dropped connections
// are expected, not news.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: time.Minute, ErrorLog: log.New(discard{}, "", 0)}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
