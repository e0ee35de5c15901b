// Package cos is a Tencent Cloud COS (Cloud Object Storage) storage driver
// for the CNCF Distribution container registry (v3).
//
// Blank-import it in a registry build to make `storage: cos:` available, or
// call New to use the driver as a library. The costest package is a COS
// emulator to run and test it without a cloud account.
package cos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/base"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// DriverName is the name the driver registers under: `storage: cos:`.
const DriverName = "cos"

// registerOnce makes Register idempotent: factory.Register panics on a
// second registration of a name, and init and a program may both call it.
// Process-wide because the factory's table is.
var registerOnce sync.Once

func init() { Register() }

// Register registers the driver factory under DriverName. init calls it;
// calling it again is a no-op.
func Register() {
	registerOnce.Do(func() { factory.Register(DriverName, &driverFactory{}) })
}

type driverFactory struct{}

func (driverFactory) Create(ctx context.Context, parameters map[string]any) (storagedriver.StorageDriver, error) {
	return FromParameters(ctx, parameters)
}

// Driver is the COS storage driver. It implements
// storagedriver.StorageDriver; path checks, tracing and metrics come from
// distribution's base package, whose embedded Base carries the storage
// methods (so go doc does not list them here): GetContent, PutContent,
// Reader, Writer, Stat, List, Move, Delete, RedirectURL and Walk, each
// documented on storagedriver.StorageDriver. Wait is the driver's own.
type Driver struct {
	baseEmbed
}

type baseEmbed struct {
	base.Base
}

// driver is the implementation behind Driver.
type driver struct {
	client *cossdk.Client // object requests
	// bucketClient sends bucket-level requests (listings, multi-delete,
	// upload listings, HEAD Bucket): client, but for acceleration.
	bucketClient *cossdk.Client
	presign      *cossdk.Client // redirect URLs, signed for the host clients use
	// presignInternal signs the redirects of clients in internalcidrs,
	// for the bucket's private-network host (nil without internalcidrs).
	presignInternal *cossdk.Client
	params          Parameters
	root            string       // rootdirectory without surrounding slashes
	endpoints       endpoints    // where requests go (client.go)
	httpClient      *http.Client // signs every request
	requests        chan struct{}
	buffers         *bufferPool
	metrics         *metrics
	// credentials sign every request (credentials.go).
	credentials credentialSource
	// heads are the answers of recent Stats, for the Move after (move.go).
	heads *headMemo
	// maxParts, when not 0, lowers COS's part-count limit: tests set it
	// with the emulator's (partsizes.go).
	maxParts int
	// background runs what Deletes leave running (background.go).
	background *backgroundWork
}

// Format prints the driver as its parameters with the secrets left out.
// fmt reads unexported fields by reflection, without their own String
// methods, so without this %+v of a driver would print params.SecretKey
// and the credential source's keys.
func (d driver) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "cos.driver{%s}", d.params)
}

// New builds a driver from typed parameters and checks once (HEAD Bucket)
// that the bucket exists and the credentials may use it. It logs nothing
// above debug but the skipverify warning.
func New(ctx context.Context, params Parameters) (*Driver, error) {
	params, endpoints, err := params.validated()
	if err != nil {
		return nil, err
	}
	d, err := newDriver(ctx, params, endpoints)
	if err != nil {
		return nil, err
	}
	if params.SkipVerify {
		logrus.WithField("driver", DriverName).Warn("skipverify is set: TLS certificates of COS are not checked")
	}
	if err := d.checkBucket(ctx); err != nil {
		var credErr *credentialError
		if !errors.As(err, &credErr) {
			err = fmt.Errorf("%w (credentials from %s)", err, d.credentials.describe())
		}
		return nil, err
	}
	// A library caller's standard error stays quiet; the registry's
	// FromParameters says it at info.
	logrus.WithField("driver", DriverName).Debugf("using the credentials from %s", d.credentials.describe())
	return &Driver{baseEmbed{base.Base{StorageDriver: d}}}, nil
}

// Name returns the driver name.
func (d *driver) Name() string { return DriverName }

// key maps a registry path to its COS object key.
func (d *driver) key(path string) string {
	if d.root == "" {
		return strings.TrimPrefix(path, "/")
	}
	if path == "/" {
		return d.root
	}
	return d.root + path
}

// dirPrefix is the listing prefix of the directory at path.
func (d *driver) dirPrefix(path string) string {
	k := d.key(path)
	if k == "" {
		return ""
	}
	return k + "/"
}

// pathOf maps an object key back to its registry path.
func (d *driver) pathOf(key string) string {
	if d.root == "" {
		return "/" + key
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(key, d.root), "/")
}

// GetContent returns the content of the object at path.
func (d *driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	r, err := d.Reader(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// PutContent stores content at path with one PUT.
func (d *driver) PutContent(ctx context.Context, path string, content []byte) error {
	return d.putObject(ctx, d.key(path), nil, content)
}

// Stat answers with one HEAD when path is an object, and adds a single
// one-key listing of "path/" only when it is not.
func (d *driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	key := d.key(path)
	if key != "" {
		head, err := d.head(ctx, key)
		if err == nil {
			d.heads.put(key, head)
			return head.fileInfo(path), nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	opt := &cossdk.BucketGetOptions{Prefix: d.dirPrefix(path), MaxKeys: 1}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return nil, err
		}
		if len(res.Contents) > 0 || len(res.CommonPrefixes) > 0 {
			return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: path, IsDir: true}}, nil
		}
		if !res.IsTruncated {
			return nil, storagedriver.PathNotFoundError{Path: path}
		}
		opt.Marker = res.NextMarker // the one key listed was a Delete's marker
	}
}

// List returns the direct children of path, paging through a delimiter listing.
func (d *driver) List(ctx context.Context, path string) ([]string, error) {
	prefix := d.dirPrefix(path)
	var children []string
	opt := &cossdk.BucketGetOptions{Prefix: prefix, Delimiter: "/", MaxKeys: maxListKeys}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return nil, err
		}
		for _, obj := range res.Contents {
			if obj.Key != prefix { // a "dir/" marker key is not a child
				children = append(children, d.pathOf(obj.Key))
			}
		}
		for _, p := range res.CommonPrefixes {
			children = append(children, d.pathOf(strings.TrimSuffix(p, "/")))
		}
		if !res.IsTruncated {
			break
		}
		opt.Marker = res.NextMarker
	}
	if len(children) == 0 && path != "/" {
		return nil, storagedriver.PathNotFoundError{Path: path}
	}
	return children, nil
}

// Client returns the COS SDK client the driver sends its requests with,
// for what the driver does not wrap (bucket policies, lifecycle rules).
func (d *Driver) Client() *cossdk.Client {
	return d.Base.StorageDriver.(*driver).client
}

// FromParameters builds a driver from the registry's configuration map,
// and logs (info) which credentials it uses; New logs that at debug only.
func FromParameters(ctx context.Context, parameters map[string]any) (*Driver, error) {
	p, err := ParseParameters(parameters)
	if err != nil {
		return nil, err
	}
	d, err := New(ctx, p)
	if err != nil {
		return nil, err
	}
	logrus.WithField("driver", DriverName).Infof("using the credentials from %s", d.Base.StorageDriver.(*driver).credentials.describe())
	return d, nil
}
