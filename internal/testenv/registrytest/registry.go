package registrytest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/registry-cos/cos/internal/testenv"
)

// Registry is a registry a test talks to over HTTP: served in the test's
// process (Start, Serve) or by a subprocess (Process.Registry).
type Registry struct {
	// URL is the base URL, "http://127.0.0.1:PORT".
	URL string
	// Host is the host:port part of URL, as in image references.
	Host string
	// Config is the configuration of a registry served in this process;
	// nil for a subprocess.
	Config *configuration.Configuration

	server *httptest.Server
	app    *handlers.App
	once   sync.Once
}

// Start runs the registry application of config in this process and stops
// it when the test ends.
func Start(tb testing.TB, config *configuration.Configuration) *Registry {
	tb.Helper()
	Track(config)
	app, err := newApp(config)
	if err != nil {
		tb.Fatalf("starting the registry: %v", err)
	}
	return Serve(tb, config, app)
}

// newApp is handlers.NewApp, which panics on a configuration it cannot
// use, with the panic returned as an error.
func newApp(config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return handlers.NewApp(context.Background(), config), nil
}

// Serve serves app, built from config, on a local port, and stops it when
// the test ends.
func Serve(tb testing.TB, config *configuration.Configuration, app *handlers.App) *Registry {
	server := httptest.NewServer(app)
	r := &Registry{
		URL:    server.URL,
		Host:   strings.TrimPrefix(server.URL, "http://"),
		Config: config,
		server: server,
		app:    app,
	}
	tb.Cleanup(r.Close)
	return r
}

// trackMiddleware is a storage middleware that changes nothing: it gives
// Registry.Wait the storage driver of a registry served in this process,
// which the registry application keeps to itself.
const trackMiddleware = "registrytest-track"

// drivers holds the tracked drivers by the id Track gave their
// configuration.
var (
	drivers  sync.Map
	driverID atomic.Int64
)

func init() {
	err := storagemiddleware.Register(trackMiddleware, func(_ context.Context, d storagedriver.StorageDriver, options map[string]any) (storagedriver.StorageDriver, error) {
		drivers.Store(options["id"], d)
		return d, nil
	})
	if err != nil {
		panic(err)
	}
}

// Track makes config's storage driver one Registry.Wait can wait on: it
// adds a middleware (first, so it sees the driver unwrapped) that hands it
// over when the application starts. Start calls it; call it before
// building an application passed to Serve.
func Track(config *configuration.Configuration) {
	if config.Middleware == nil {
		config.Middleware = map[string][]configuration.Middleware{}
	}
	track := configuration.Middleware{Name: trackMiddleware, Options: configuration.Parameters{"id": driverID.Add(1)}}
	config.Middleware["storage"] = append([]configuration.Middleware{track}, config.Middleware["storage"]...)
}

// Wait waits for the work the storage driver of a registry served in this
// process left running in the background (cos.Driver.Wait: the confirming
// part of an upload directory's Delete, which the registry makes at every
// blob commit), so a test sees the bucket as the registry will leave it.
// Its configuration must have gone through Track. A driver without
// background work has nothing to wait for.
func (r *Registry) Wait(tb testing.TB) {
	tb.Helper()
	d, ok := r.driver()
	if !ok {
		tb.Fatalf("registry %s: Wait needs a registry served in this process whose configuration went through Track", r.URL)
	}
	if bg, ok := d.(interface{ Wait(context.Context) error }); ok {
		if err := bg.Wait(context.Background()); err != nil {
			tb.Fatalf("waiting for the storage driver's background work: %v", err)
		}
	}
}

// driver finds the tracked driver of r.
func (r *Registry) driver() (storagedriver.StorageDriver, bool) {
	if r.Config == nil {
		return nil, false
	}
	for _, mw := range r.Config.Middleware["storage"] {
		if mw.Name == trackMiddleware {
			d, ok := drivers.Load(mw.Options["id"])
			if ok {
				return d.(storagedriver.StorageDriver), true
			}
		}
	}
	return nil, false
}

// Close stops a registry served in this process, as a process shutting
// down would. It does nothing for a subprocess's Registry.
func (r *Registry) Close() {
	r.once.Do(func() {
		if r.server != nil {
			r.server.Close()
			_ = r.app.Shutdown()
			for _, mw := range r.Config.Middleware["storage"] {
				if mw.Name == trackMiddleware {
					drivers.Delete(mw.Options["id"])
				}
			}
		}
	})
}

// Ref parses the image reference s ("repo:tag", "repo@digest") on this
// registry.
func (r *Registry) Ref(tb testing.TB, s string) name.Reference {
	tb.Helper()
	ref, err := name.ParseReference(r.Host+"/"+s, name.Insecure)
	if err != nil {
		tb.Fatalf("parsing reference %q: %v", s, err)
	}
	return ref
}

// Process is a registry binary serving as a subprocess.
type Process struct {
	*testenv.Process
	// URL is the base URL, "http://127.0.0.1:PORT"; Host its host:port.
	URL, Host string
}

// StartProcess runs `binary serve configPath` on a free local port (given
// as REGISTRY_HTTP_ADDR) with the extra environment variables env
// ("NAME=value"), and waits until it answers /v2/. It is stopped when the
// test ends, and what it printed is logged if the test failed.
func StartProcess(tb testing.TB, binary, configPath string, env ...string) *Process {
	tb.Helper()
	addr := testenv.FreeAddr(tb)
	cmd := exec.Command(binary, "serve", configPath)
	cmd.Env = append(append(os.Environ(), "REGISTRY_HTTP_ADDR="+addr), env...)
	p := &Process{Process: testenv.StartProcess(tb, cmd), URL: "http://" + addr, Host: addr}
	p.WaitForHTTP(tb, p.URL+"/v2/", 30*time.Second)
	return p
}

// Registry describes the process as a Registry, for Ref and the blob
// helpers.
func (p *Process) Registry() *Registry { return &Registry{URL: p.URL, Host: p.Host} }
