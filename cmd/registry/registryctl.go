package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/reference"
	"github.com/gorilla/handlers"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v2"
)

// registryctlConfig is Harbor's registry controller configuration file
// (Harbor's installer writes it as common/config/registryctl/config.yml,
// its chart as /etc/registryctl/config.yml), read as Harbor's own
// controller reads it.
type registryctlConfig struct {
	Protocol    string `yaml:"protocol"`
	Port        string `yaml:"port"`
	LogLevel    string `yaml:"log_level"`
	HTTPSConfig struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"https_config"`
	RegistryConfig string `yaml:"registry_config"`
}

func newRegistryctlCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registryctl -c FILE",
		Short: "Harbor's registry controller (the deletes of Harbor's garbage collection) on this registry's storage",
		Long: `registryctl serves Harbor's registry controller API on the storage of the
registry configuration it names: GET /api/health, and, with
"Authorization: Harbor-Secret $JOBSERVICE_SECRET",
DELETE /api/registry/blob/<digest> and
DELETE /api/registry/<repository>/manifests/<digest>, the calls of Harbor's
garbage collection. FILE is Harbor's registryctl configuration (protocol,
port, log_level, https_config, registry_config); PORT, LOG_LEVEL,
REGISTRYCTL_PROTOCOL, REGISTRYCTL_HTTPS_CERT, REGISTRYCTL_HTTPS_KEY and
REGISTRY_CONFIG override it, and REGISTRY_STORAGE_* variables apply to the
registry configuration, as in Harbor's own controller.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			path, _ := cmd.Flags().GetString("config")
			if err := runRegistryctl(path); err != nil {
				exitWithError(os.Stderr, err)
			}
		},
	}
	cmd.Flags().StringP("config", "c", "", "Harbor's registryctl configuration file")
	return cmd
}

// runRegistryctl reads the configuration, opens the storage and serves the
// controller until SIGINT or SIGTERM.
func runRegistryctl(path string) error {
	config, err := loadRegistryctlConfig(path)
	if err != nil {
		return err
	}
	secret := os.Getenv("JOBSERVICE_SECRET")
	if secret == "" {
		// Harbor's controller starts and then refuses every request; a
		// controller nobody can call is a configuration error.
		return errors.New("configuration error: JOBSERVICE_SECRET is not set (Harbor's jobservice authenticates with it)")
	}
	if level, err := logrus.ParseLevel(config.LogLevel); err == nil {
		logrus.SetLevel(level)
	}
	ctx := context.Background()
	driver, err := openStorage(ctx, config.RegistryConfig)
	if err != nil {
		return err
	}
	server := &http.Server{
		// All interfaces, as Harbor's controller: core and jobservice call
		// it by service name.
		Addr:              ":" + config.Port,
		Handler:           handlers.LoggingHandler(os.Stdout, newRegistryctlHandler(driver, secret)),
		ReadHeaderTimeout: time.Minute,
	}
	done := make(chan error, 1)
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
		<-signals
		shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done <- server.Shutdown(shutdownCtx)
	}()
	logrus.Infof("registry controller listening on %s (%s), storage %s", server.Addr, config.Protocol, driver.Name())
	if config.Protocol == "https" {
		err = server.ListenAndServeTLS(config.HTTPSConfig.Cert, config.HTTPSConfig.Key)
	} else {
		err = server.ListenAndServe()
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry controller: %w", err)
	}
	return <-done
}

// loadRegistryctlConfig reads Harbor's registryctl configuration file and
// applies the environment variables Harbor's controller honours.
func loadRegistryctlConfig(path string) (*registryctlConfig, error) {
	if path == "" {
		return nil, errors.New("configuration error: no registryctl configuration file given (-c FILE)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration error: %w", err)
	}
	config := &registryctlConfig{}
	if err := yaml.Unmarshal(data, config); err != nil {
		return nil, fmt.Errorf("configuration error: %s: %w", path, err)
	}
	for _, env := range []struct {
		name  string
		value *string
	}{
		{"REGISTRYCTL_PROTOCOL", &config.Protocol},
		{"PORT", &config.Port},
		{"LOG_LEVEL", &config.LogLevel},
		{"REGISTRYCTL_HTTPS_CERT", &config.HTTPSConfig.Cert},
		{"REGISTRYCTL_HTTPS_KEY", &config.HTTPSConfig.Key},
		{"REGISTRY_CONFIG", &config.RegistryConfig},
	} {
		if v := os.Getenv(env.name); v != "" {
			*env.value = v
		}
	}
	// REGISTRY_CONFIG is the controller's variable, not the registry's:
	// the registry's parser would warn about it as unrecognised.
	_ = os.Unsetenv("REGISTRY_CONFIG")
	config.Protocol = strings.ToLower(config.Protocol)
	switch {
	case config.Protocol != "http" && config.Protocol != "https":
		return nil, fmt.Errorf("configuration error: %s: protocol %q, want http or https", path, config.Protocol)
	case config.Port == "":
		return nil, fmt.Errorf("configuration error: %s: no port (set port or PORT)", path)
	case config.RegistryConfig == "":
		return nil, fmt.Errorf("configuration error: %s: no registry_config (set registry_config or REGISTRY_CONFIG)", path)
	case config.Protocol == "https" && (config.HTTPSConfig.Cert == "" || config.HTTPSConfig.Key == ""):
		return nil, fmt.Errorf("configuration error: %s: protocol https needs https_config.cert and https_config.key", path)
	}
	return config, nil
}

// openStorage opens the storage driver of the registry configuration at
// path (REGISTRY_STORAGE_* applied), without the registry's middleware:
// the controller only deletes.
func openStorage(ctx context.Context, path string) (driver storagedriver.StorageDriver, err error) {
	config, err := parseConfigurationFile(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Storage.Type panics when the configuration names two drivers.
		if r := recover(); r != nil {
			driver, err = nil, fmt.Errorf("configuration error: %s: %w", path, startupError(r))
		}
	}()
	return factory.Create(ctx, config.Storage.Type(), config.Storage.Parameters())
}

// registryctlHandler answers Harbor's registry controller API as Harbor's
// own controller does (status codes, bodies and the order of the checks:
// authentication before routing), on distribution v3's storage API: the
// deletes are the driver's Delete of the path Harbor's controller deletes.
type registryctlHandler struct {
	driver storagedriver.StorageDriver
	secret string
}

// newRegistryctlHandler serves the controller API on driver, accepting
// "Authorization: Harbor-Secret <secret>".
func newRegistryctlHandler(driver storagedriver.StorageDriver, secret string) http.Handler {
	return &registryctlHandler{driver: driver, secret: secret}
}

const (
	registryctlHealthPath = "/api/health"
	registryctlPrefix     = "/api/registry/"
	harborSecretPrefix    = "Harbor-Secret "
)

func (h *registryctlHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	// Only the health check is open; every other path, known or not, is
	// refused without the secret first.
	if path != registryctlHealthPath && !h.authorized(r) {
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
		return
	}
	var serve func(http.ResponseWriter, *http.Request)
	method := http.MethodDelete
	switch {
	case path == registryctlHealthPath:
		serve, method = serveHealth, http.MethodGet
	case strings.HasPrefix(path, registryctlPrefix+"blob/") && isSegment(strings.TrimPrefix(path, registryctlPrefix+"blob/")):
		serve = h.deleteBlob
	default:
		// <repository>/manifests/<reference>: the repository is everything
		// before the last "/manifests/", as in Harbor's route.
		rest, ok := strings.CutPrefix(path, registryctlPrefix)
		i := strings.LastIndex(rest, "/manifests/")
		if !ok || i < 0 || !isSegment(rest[i+len("/manifests/"):]) {
			http.NotFound(w, r)
			return
		}
		serve = h.deleteManifest
	}
	if r.Method != method {
		// What Harbor's router answers: the status alone.
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	serve(w, r)
}

// isSegment reports whether s is one non-empty path segment.
func isSegment(s string) bool {
	return s != "" && !strings.Contains(s, "/")
}

// authorized checks the Harbor-Secret credential in constant time.
func (h *registryctlHandler) authorized(r *http.Request) bool {
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), harborSecretPrefix)
	return ok && subtle.ConstantTimeCompare([]byte(given), []byte(h.secret)) == 1
}

func serveHealth(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte(`"healthy"`))
}

// deleteBlob deletes the blob's data directory (blobs/<alg>/<xx>/<hex>),
// what Harbor's controller deletes; links to it in repositories stay.
func (h *registryctlHandler) deleteBlob(w http.ResponseWriter, r *http.Request) {
	ref := strings.TrimPrefix(r.URL.Path, registryctlPrefix+"blob/")
	// Harbor's controller answers a malformed digest with 500, not 400: the
	// error comes from the storage layer's parse, which it does not tell
	// apart. Harbor's GC only sends digests from its database.
	if err := storage.NewVacuum(r.Context(), h.driver).RemoveBlob(ref); err != nil {
		h.fail(w, "blob", ref, err)
	}
}

// deleteManifest deletes the manifest's revision link in the repository,
// what Harbor's controller deletes; tags were removed by Harbor through the
// registry API before.
func (h *registryctlHandler) deleteManifest(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, registryctlPrefix)
	i := strings.LastIndex(rest, "/manifests/")
	name, ref := rest[:i], rest[i+len("/manifests/"):]
	dgst, err := digest.Parse(ref)
	if err != nil {
		writeHarborError(w, http.StatusBadRequest, "BAD_REQUEST", "bad request: not supported reference: "+err.Error())
		return
	}
	if _, err := reference.WithName(name); err != nil {
		// Harbor's controller passes any name to the storage; no
		// repository of an invalid name can exist, and an invalid name
		// must not reach a storage path (path.Join would resolve "..").
		writeHarborError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("repository %q: %v", name, err))
		return
	}
	if err := storage.NewVacuum(r.Context(), h.driver).RemoveManifest(name, dgst, nil); err != nil {
		h.fail(w, "manifest", name+"@"+ref, err)
	}
}

// fail answers a failed delete: 404 when there was nothing to delete
// (Harbor's GC goes on), else 500 with Harbor's generic message; the cause
// is logged, not sent.
func (h *registryctlHandler) fail(w http.ResponseWriter, what, ref string, err error) {
	if notFound := (storagedriver.PathNotFoundError{}); errors.As(err, &notFound) {
		writeHarborError(w, http.StatusNotFound, "NOT_FOUND", err.Error())
		return
	}
	logrus.Errorf("registry controller: deleting %s %s: %v", what, ref, err)
	writeHarborError(w, http.StatusInternalServerError, "UNKNOWN", "internal server error")
}

// writeHarborError writes Harbor's error body,
// {"errors":[{"code":...,"message":...}]}, followed by a newline.
func writeHarborError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string][]map[string]string{
		"errors": {{"code": code, "message": message}},
	})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
