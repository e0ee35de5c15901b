package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/health"
	"github.com/distribution/distribution/v3/registry/handlers"
	gorhandlers "github.com/gorilla/handlers"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v2"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
)

// Defaults of the dev subcommand.
const (
	defaultDevAddr    = "127.0.0.1:5000"
	defaultDevDataDir = "registry-cos-data"
	devShutdownGrace  = 10 * time.Second
)

// devDefaults is the configuration the dev registry starts from; a --config
// file is merged over it, and the storage section is then replaced by the
// embedded emulator.
const devDefaults = `
version: 0.1
log:
  level: info
  formatter: text
http:
  addr: 127.0.0.1:5000
storage:
  delete:
    enabled: true
  redirect:
    disable: false
`

// devOptions are the flags of the dev subcommand.
type devOptions struct {
	// Addr is the registry's listen address; a port of 0 picks a free one.
	Addr string
	// AddrSet reports whether Addr was given explicitly, in which case it
	// wins over http.addr from ConfigFile.
	AddrSet bool
	// DataDir holds the emulator's bucket (DataDir/cos) and the HTTP secret
	// that keeps upload URLs valid across restarts.
	DataDir string
	// ConfigFile is an optional upstream configuration merged over the
	// dev defaults.
	ConfigFile string
	// Log receives the registry's logs and access log; nil means stdout.
	Log io.Writer
}

// devRegistry is a running registry on an embedded COS emulator.
type devRegistry struct {
	// Addr is the address the registry listens on (host:port).
	Addr string
	// Emulator is the embedded COS emulator.
	Emulator *costest.Server
	// Config is the effective registry configuration.
	Config *configuration.Configuration

	app      *handlers.App
	server   *http.Server
	serveErr chan error
}

func newDevCommand() *cobra.Command {
	opts := devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run a registry on an embedded, disk-backed COS emulator (no cloud account needed)",
		Long: `dev starts a COS emulator in this process, storing its bucket under DIR/cos,
and a registry that uses the cos storage driver against it: deletes are
enabled and blob pulls are redirected to the emulator through presigned URLs,
as they would be to COS. Data survive a restart with the same --data.
A --config file (upstream registry configuration) is merged over the dev
defaults; its storage driver section is ignored. Stop with Ctrl-C.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			opts.AddrSet = cmd.Flags().Changed("addr")
			if err := runDev(opts); err != nil {
				exitWithError(os.Stderr, err)
			}
		},
	}
	cmd.Flags().StringVar(&opts.Addr, "addr", defaultDevAddr, "registry listen address `HOST:PORT` (port 0 picks a free port)")
	cmd.Flags().StringVar(&opts.DataDir, "data", defaultDevDataDir, "keep the emulator's bucket under `DIR`/cos, across restarts")
	cmd.Flags().StringVar(&opts.ConfigFile, "config", "", "optional registry configuration `FILE` merged over the dev defaults")
	return cmd
}

// runDev runs the dev registry until SIGINT or SIGTERM, then stops the
// registry and after it the emulator.
func runDev(opts devOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dev, err := startDev(ctx, opts)
	if err != nil {
		return err
	}
	printDevBanner(os.Stdout, dev, opts.DataDir)

	var serveErr error
	select {
	case <-ctx.Done():
		logrus.Info("registry-cos dev: shutting down")
	case serveErr = <-dev.serveErr:
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), devShutdownGrace)
	defer cancel()
	if err := dev.Close(shutdownCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	if serveErr != nil {
		return serveErr
	}
	logrus.Info("registry-cos dev: stopped")
	return nil
}

// startDev starts the emulator and a registry on it, and returns once the
// registry accepts connections.
func startDev(ctx context.Context, opts devOptions) (*devRegistry, error) {
	if opts.Addr == "" {
		opts.Addr = defaultDevAddr
	}
	if opts.DataDir == "" {
		opts.DataDir = defaultDevDataDir
	}
	logOut := opts.Log
	if logOut == nil {
		logOut = os.Stdout
	}

	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", opts.Addr, err)
	}
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "cos"), 0o755); err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	secret, err := devHTTPSecret(opts.DataDir)
	if err != nil {
		return nil, err
	}

	// The emulator listens on the registry's host so that the presigned
	// URLs of redirected pulls reach it from wherever the registry is
	// reachable. An unspecified host (0.0.0.0) gives no address a client
	// could use, so redirects are turned off in that case.
	emulatorHost, redirectUsable := host, true
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		emulatorHost, redirectUsable = "127.0.0.1", false
	}
	emulator, err := costest.NewServer(costest.Options{
		Dir:  filepath.Join(opts.DataDir, "cos"),
		Addr: net.JoinHostPort(emulatorHost, "0"),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the COS emulator: %w", err)
	}

	config, err := devConfiguration(opts, emulator, emulatorEndpoint(emulator.URL, emulatorHost), secret, redirectUsable)
	if err != nil {
		_ = emulator.Close()
		return nil, err
	}

	if err := writeCheckConfig(opts.DataDir, config.Storage.Parameters()); err != nil {
		_ = emulator.Close()
		return nil, err
	}
	dev, err := startRegistryServer(ctx, config, logOut)
	if err != nil {
		_ = emulator.Close()
		return nil, err
	}
	dev.Emulator = emulator
	// http.addr may come from --config rather than --addr.
	if listenHost, _, err := net.SplitHostPort(config.HTTP.Addr); err == nil {
		host = listenHost
	}
	dev.Addr = displayAddress(host, dev.Addr)
	return dev, nil
}

// displayAddress is the address to show users: the host they asked for with
// the port actually bound, or 127.0.0.1 for a wildcard host.
func displayAddress(requestedHost, boundAddr string) string {
	_, port, err := net.SplitHostPort(boundAddr)
	if err != nil {
		return boundAddr
	}
	host := requestedHost
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// startRegistryServer binds config.HTTP.Addr and serves the registry
// application on it, with the upstream liveness ("/"), health and access log
// handlers.
func startRegistryServer(ctx context.Context, config *configuration.Configuration, logOut io.Writer) (*devRegistry, error) {
	if err := configureLogging(config); err != nil {
		return nil, err
	}
	logrus.SetOutput(logOut)

	listener, err := net.Listen("tcp", config.HTTP.Addr)
	if err != nil {
		return nil, err
	}
	app, err := newApp(ctx, config)
	if err != nil {
		listener.Close()
		return nil, err
	}
	var handler http.Handler = app
	handler = alive("/", handler)
	handler = health.Handler(handler)
	if !config.Log.AccessLog.Disabled {
		handler = gorhandlers.CombinedLoggingHandler(logOut, handler)
	}
	dev := &devRegistry{
		Addr:     listener.Addr().String(),
		Config:   config,
		app:      app,
		server:   &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute},
		serveErr: make(chan error, 1),
	}
	go func() {
		err := dev.server.Serve(listener)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		dev.serveErr <- err
	}()
	return dev, nil
}

// Close stops the registry, waiting up to ctx's deadline for requests in
// flight, then the emulator.
func (d *devRegistry) Close(ctx context.Context) error {
	err := d.server.Shutdown(ctx)
	if appErr := d.app.Shutdown(); appErr != nil {
		err = errors.Join(err, appErr)
	}
	if d.Emulator != nil {
		if emuErr := d.Emulator.Close(); emuErr != nil {
			err = errors.Join(err, emuErr)
		}
	}
	return err
}

// devConfiguration merges the optional configuration file over the dev
// defaults, then points storage at the emulator.
func devConfiguration(opts devOptions, emulator *costest.Server, endpoint, secret string, redirectUsable bool) (*configuration.Configuration, error) {
	merged := map[any]any{}
	if err := yaml.Unmarshal([]byte(devDefaults), &merged); err != nil {
		return nil, fmt.Errorf("dev defaults: %w", err)
	}
	userRedirect := false
	if opts.ConfigFile != "" {
		data, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		user := map[any]any{}
		if err := yaml.Unmarshal(data, &user); err != nil {
			return nil, fmt.Errorf("--config %s: %w", opts.ConfigFile, err)
		}
		if storage, ok := user["storage"].(map[any]any); ok {
			_, userRedirect = storage["redirect"]
		}
		mergeYAML(merged, user)
	}

	storage, _ := merged["storage"].(map[any]any)
	if storage == nil {
		storage = map[any]any{}
	}
	for key := range storage {
		if !isStorageOption(fmt.Sprint(key)) {
			logrus.Warnf("registry-cos dev: ignoring storage driver %q from --config; dev always uses the embedded COS emulator", key)
			delete(storage, key)
		}
	}
	if !redirectUsable && !userRedirect {
		storage["redirect"] = map[any]any{"disable": true}
	}
	// A placeholder keeps configuration.Parse from rejecting a file without
	// storage; the real parameters are set after parsing so that no
	// REGISTRY_STORAGE_* variable can point dev at another bucket.
	storage[cos.DriverName] = map[any]any{}
	merged["storage"] = storage

	httpSection, _ := merged["http"].(map[any]any)
	if httpSection == nil {
		httpSection = map[any]any{}
	}
	if opts.AddrSet || httpSection["addr"] == nil {
		httpSection["addr"] = opts.Addr
	}
	if httpSection["secret"] == nil {
		httpSection["secret"] = secret
	}
	merged["http"] = httpSection

	data, err := yaml.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("dev configuration: %w", err)
	}
	config, err := configuration.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("dev configuration: %w", err)
	}
	for key := range config.Storage {
		if !isStorageOption(key) {
			delete(config.Storage, key)
		}
	}
	config.Storage[cos.DriverName] = configuration.Parameters{
		"secretid":  emulator.SecretID,
		"secretkey": emulator.SecretKey,
		"region":    emulator.Region,
		"bucket":    emulator.Bucket,
		"endpoint":  endpoint,
	}
	if opts.AddrSet {
		config.HTTP.Addr = opts.Addr
	}
	return config, nil
}

// emulatorEndpoint is the emulator's base URL under the host name the
// registry was started with. Presigned redirect URLs carry this host, and
// clients such as go-containerregistry refuse a redirect from one host to a
// different loopback or private address (localhost:5000 to 127.0.0.1:PORT).
func emulatorEndpoint(emulatorURL, host string) string {
	u, err := url.Parse(emulatorURL)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return emulatorURL
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String()
}

// isStorageOption reports whether key is one of the storage section's
// registry options rather than a driver name.
func isStorageOption(key string) bool {
	switch key {
	case "maintenance", "cache", "delete", "redirect", "tag":
		return true
	}
	return false
}

// mergeYAML merges src into dst: nested maps are merged key by key, any
// other value in src replaces the one in dst.
func mergeYAML(dst, src map[any]any) {
	for key, value := range src {
		srcMap, srcIsMap := value.(map[any]any)
		dstMap, dstIsMap := dst[key].(map[any]any)
		if srcIsMap && dstIsMap {
			mergeYAML(dstMap, srcMap)
			continue
		}
		dst[key] = value
	}
}

// devHTTPSecret returns the HTTP secret kept in dataDir, creating it on first
// use. Upload URLs carry state signed with this secret, so keeping it makes
// an upload started before a restart resumable after it.
func devHTTPSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "http-secret")
	if data, err := os.ReadFile(path); err == nil {
		if secret := strings.TrimSpace(string(data)); secret != "" {
			return secret, nil
		}
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("--data: %w", err)
	}
	return secret, nil
}

// alive answers 200 on path without touching storage, like the upstream
// server's liveness route.
func alive(path string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// printDevBanner tells the user where the registry is and how to push to it.
// checkConfigName is the configuration dev writes in its data directory
// for `registry-cos check`: the storage section that reaches its emulator.
const checkConfigName = "check-config.yml"

// writeCheckConfig writes the storage parameters of the dev registry (the
// emulator's endpoint and its public test keys) for `registry-cos check`.
func writeCheckConfig(dataDir string, params configuration.Parameters) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by registry-cos dev for: registry-cos check " + filepath.Join(dataDir, checkConfigName) + "\nversion: 0.1\nstorage:\n  cos:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s: %q\n", k, fmt.Sprint(params[k]))
	}
	return os.WriteFile(filepath.Join(dataDir, checkConfigName), []byte(b.String()), 0o600)
}

func printDevBanner(w io.Writer, dev *devRegistry, dataDir string) {
	addr := dev.Addr
	redirect := "on (blob pulls go straight to the emulator)"
	if r, ok := dev.Config.Storage["redirect"]; ok && r["disable"] == true {
		redirect = "off"
	}
	fmt.Fprintf(w, `
registry-cos %s dev
  registry:  http://%s
  storage:   COS emulator at %s, bucket %s, region %s
  data:      %s (kept across restarts)
  redirects: %s; deletes: enabled

Push and pull with any OCI client, for example:
  crane copy alpine:latest %s/alpine:latest
  crane pull %s/alpine:latest alpine.tar
  docker tag alpine:latest %s/alpine:latest && docker push %s/alpine:latest
  skopeo copy --dest-tls-verify=false docker://docker.io/library/alpine:latest docker://%s/alpine:latest
  curl http://%s/v2/_catalog
Check the emulator as you would a real bucket:
  registry-cos check %s
(crane: go install github.com/google/go-containerregistry/cmd/crane@latest)

Stop with Ctrl-C.

`, versionString(), addr, dev.Config.Storage.Parameters()["endpoint"], dev.Emulator.Bucket, dev.Emulator.Region,
		filepath.Join(dataDir, "cos"), redirect, addr, addr, addr, addr, addr, addr, filepath.Join(dataDir, checkConfigName))
}
