package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/version"
	"github.com/docker/go-metrics"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// runServe replaces the upstream serve command's Run. Upstream lets
// handlers.NewApp panic when the storage driver cannot start (bad
// credentials, wrong region, missing bucket), which prints a stack trace;
// here the driver's sentence is printed on one line and the exit code is 1.
func runServe(cmd *cobra.Command, args []string) {
	profiling, _ := cmd.Flags().GetBool(debugProfilingFlag)
	if err := serve(cmd.Context(), args, profiling); err != nil {
		exitWithError(os.Stderr, err)
	}
}

// serve loads the configuration named by args (or REGISTRY_CONFIGURATION_PATH),
// starts the registry and serves until the listener fails. profiling puts
// pprof and expvar on the debug listener.
func serve(ctx context.Context, args []string, profiling bool) error {
	config, err := resolveConfiguration(args)
	if err != nil {
		return err
	}
	reg, err := newRegistry(ctx, config)
	if err != nil {
		return err
	}
	configureDebugServer(config, profiling)
	return reg.ListenAndServe()
}

// newRegistry calls registry.NewRegistry and turns the panics through which
// the upstream application reports startup failures into an error.
func newRegistry(ctx context.Context, config *configuration.Configuration) (reg *registry.Registry, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	defer func() {
		if r := recover(); r != nil {
			reg, err = nil, startupError(r)
		}
	}()
	return registry.NewRegistry(ctx, config)
}

// newApp calls handlers.NewApp and turns its startup panics into an error.
func newApp(ctx context.Context, config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			app, err = nil, startupError(r)
		}
	}()
	return handlers.NewApp(ctx, config), nil
}

// startupError converts a value recovered from a startup panic into an error.
func startupError(recovered any) error {
	switch v := recovered.(type) {
	case error:
		return v
	case string:
		return errors.New(v)
	default:
		return fmt.Errorf("%v", v)
	}
}

// exitWithError prints err as a single line prefixed with the program name
// and exits with status 1.
func exitWithError(w io.Writer, err error) {
	fmt.Fprintln(w, errorLine(err))
	os.Exit(1)
}

// errorLine renders err as one line: an error spanning several lines would
// make log collectors split it into unrelated records.
func errorLine(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return programName + ": " + msg
}

// resolveConfiguration reads and parses the configuration file named by the
// first argument or by REGISTRY_CONFIGURATION_PATH. Environment overrides
// (REGISTRY_STORAGE_COS_BUCKET and so on) are applied by configuration.Parse.
func resolveConfiguration(args []string) (*configuration.Configuration, error) {
	path := ""
	if len(args) > 0 {
		path = args[0]
	} else {
		path = os.Getenv("REGISTRY_CONFIGURATION_PATH")
	}
	if path == "" {
		return nil, errors.New("configuration error: no configuration file given (pass it as an argument or set REGISTRY_CONFIGURATION_PATH)")
	}
	return parseConfigurationFile(path)
}

// parseConfigurationFile parses one configuration file.
func parseConfigurationFile(path string) (config *configuration.Configuration, err error) {
	defer func() {
		// Storage.Type panics when the file and the environment
		// (REGISTRY_STORAGE_<DRIVER>_...) name two storage drivers.
		if r := recover(); r != nil {
			config, err = nil, fmt.Errorf("configuration error: %s: %w", path, startupError(r))
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("configuration error: %w", err)
	}
	defer f.Close()
	config, err = configuration.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("configuration error: %s: %w", path, err)
	}
	return config, nil
}

// debugProfilingFlag is serve's flag that puts pprof and expvar on the
// debug listener.
const debugProfilingFlag = "debug-pprof"

// configureDebugServer starts the debug listener (/debug/health and, when
// enabled, Prometheus metrics) the way the upstream serve command does, but
// with pprof and expvar only when profiling is asked for: upstream serves
// them on every debug listener, and the metrics port is reached by more than
// the pod (a Service for Prometheus), where pprof hands anyone the process's
// memory and a way to load its CPU.
func configureDebugServer(config *configuration.Configuration, profiling bool) {
	if config.HTTP.Debug.Addr == "" {
		return
	}
	if config.HTTP.Debug.Prometheus.Enabled {
		path := config.HTTP.Debug.Prometheus.Path
		if path == "" {
			path = "/metrics"
		}
		logrus.Info("providing prometheus metrics on ", path)
		http.Handle(path, metrics.Handler())
	}
	go func(addr string) {
		logrus.Infof("debug server listening %v", addr)
		if err := http.ListenAndServe(addr, debugHandler(profiling)); err != nil {
			exitWithError(os.Stderr, fmt.Errorf("debug server: %w", err))
		}
	}(config.HTTP.Debug.Addr)
}

// debugHandler serves what is registered on http.DefaultServeMux (metrics,
// /debug/health), less pprof (/debug/pprof/) and expvar (/debug/vars) when
// profiling is off. Paths are matched as ServeMux cleans them: an unclean
// path is redirected to its clean form, which comes back through here.
func debugHandler(profiling bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !profiling && (p == "/debug/pprof" || strings.HasPrefix(p, "/debug/pprof/") || p == "/debug/vars") {
			http.NotFound(w, r)
			return
		}
		http.DefaultServeMux.ServeHTTP(w, r)
	})
}

// configureLogging applies the log level and format of config to the
// standard logger, as the upstream commands do.
func configureLogging(config *configuration.Configuration) error {
	level, err := logrus.ParseLevel(string(config.Log.Level))
	if err != nil {
		level = logrus.InfoLevel
	}
	logrus.SetLevel(level)
	switch config.Log.Formatter {
	case "", "text":
		logrus.SetFormatter(&logrus.TextFormatter{})
	case "json", "logstash":
		logrus.SetFormatter(&logrus.JSONFormatter{})
	default:
		return fmt.Errorf("configuration error: unsupported log formatter %q", config.Log.Formatter)
	}
	return nil
}

// versionString is the version stamped at build time (see the Makefile).
// Unstamped builds (go run, go build) carry distribution's own default,
// "v3.1.2+unknown", which is not this program's version: they say "devel".
func versionString() string {
	v := version.Version()
	if strings.HasSuffix(v, "+unknown") {
		return "devel"
	}
	return v
}
