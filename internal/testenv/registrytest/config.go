// Package registrytest runs registries for tests and benchmarks: a
// configuration for a storage driver, a registry application served in the
// test's process or a registry binary run as a subprocess, and the client
// side of the blob upload protocol and of images.
//
// It does not import the cos driver: a registry on `storage: cos:` needs the
// driver registered, which importing github.com/registry-cos/cos does (the
// caller's import, as in any registry build). That keeps the package usable
// with any driver (the benchmarks' filesystem yardstick) and keeps the
// dependencies one-way: registrytest → testenv → costest, with the root
// package never below them.
package registrytest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
)

// HTTPSecret is the http.secret of every test registry, so that an upload
// started on one instance can continue on another, as behind a load
// balancer.
const HTTPSecret = "registry-cos-test-secret"

// RawYAML is a parameter value written into the configuration as it is,
// for values a test wants exactly so (a nested map, a quoting style, a
// value the parser must refuse).
type RawYAML string

// Options describe a test registry's configuration. The zero value is a
// registry on the cos driver with no parameters, logging warnings.
type Options struct {
	// Driver is the storage driver's name. Default "cos".
	Driver string
	// Parameters are the driver's parameters, such as
	// testenv.DriverParameters of an emulator. A string is written
	// quoted, a RawYAML as it is, anything else with %v.
	Parameters map[string]any
	// Redirect turns on redirects of blob GET and HEAD to the storage.
	Redirect bool
	// BlobDescriptorCache turns on the in-memory blob descriptor cache
	// that production configurations use.
	BlobDescriptorCache bool
	// LogLevel is log.level. Default "warn": the registry logs every
	// request at info and every 404 as an error.
	LogLevel string
	// AccessLog turns the access log on.
	AccessLog bool
	// DebugAddr, when set, is the address of the debug server, with the
	// Prometheus metrics at /metrics.
	DebugAddr string
}

// ConfigYAML renders the configuration opts describe, as an operator would
// write it. It listens on 127.0.0.1:0 (a process is given its port with
// REGISTRY_HTTP_ADDR), deletes are enabled and upload purging is off (it
// would walk the storage at a random moment).
func ConfigYAML(opts Options) string {
	driver := opts.Driver
	if driver == "" {
		driver = "cos"
	}
	level := opts.LogLevel
	if level == "" {
		level = "warn"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: %s
  accesslog:
    disabled: %t
http:
  addr: 127.0.0.1:0
  secret: %q
`, level, !opts.AccessLog, HTTPSecret)
	if opts.DebugAddr != "" {
		fmt.Fprintf(&b, `  debug:
    addr: %s
    prometheus:
      enabled: true
      path: /metrics
`, opts.DebugAddr)
	}
	fmt.Fprintf(&b, "storage:\n  %s:\n", driver)
	names := make([]string, 0, len(opts.Parameters))
	for name := range opts.Parameters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch v := opts.Parameters[name].(type) {
		case string:
			fmt.Fprintf(&b, "    %s: %q\n", name, v)
		case RawYAML:
			fmt.Fprintf(&b, "    %s: %s\n", name, v)
		default:
			fmt.Fprintf(&b, "    %s: %v\n", name, v)
		}
	}
	if opts.BlobDescriptorCache {
		b.WriteString("  cache:\n    blobdescriptor: inmemory\n")
	}
	fmt.Fprintf(&b, `  delete:
    enabled: true
  redirect:
    disable: %t
  maintenance:
    uploadpurging:
      enabled: false
`, !opts.Redirect)
	return b.String()
}

// Config is the parsed ConfigYAML(opts). Like a registry's own start, the
// parse applies REGISTRY_* environment variables.
func Config(tb testing.TB, opts Options) *configuration.Configuration {
	tb.Helper()
	config, err := configuration.Parse(strings.NewReader(ConfigYAML(opts)))
	if err != nil {
		tb.Fatalf("parsing the registry configuration: %v", err)
	}
	return config
}
