// Package harborcheck runs real Harbor (core and jobservice, built from
// Harbor's source) with registry-cos as its registry and
// `registry-cos registryctl` as its registry controller, on the COS
// emulator, PostgreSQL and Redis: Harbor's API, token auth, push, pull,
// artifact deletion and Harbor's garbage collection, end to end.
//
// It is a module of its own, run by .ci/run after `go test ./...`: Harbor
// is a test dependency found beside the repository (../shared/harbor, or
// HARBOR_SOURCE), never part of the project. Without it the test skips.
package harborcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

const (
	adminUser     = "admin"
	adminPassword = "Harbor12345"
	coreSecret    = "coresecret0123456"
	jobSecret     = "jobsecret01234567"
	registryUser  = "harbor_registry_user"
	registryPass  = "regpassword123"
	project       = "cos"
)

// harborSource is where Harbor's source snapshot is: HARBOR_SOURCE, or
// ../shared/harbor beside the repository.
func harborSource(t *testing.T) string {
	if dir := os.Getenv("HARBOR_SOURCE"); dir != "" {
		return dir
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(filepath.Dir(root), "shared", "harbor")
}

// TestHarborEndToEnd: through Harbor's API and token auth, create a
// project, push images (shared layers, an index, a tag overwritten), pull
// them back, delete artifacts, run Harbor's garbage collection (with
// delete_untagged and 3 workers, then with delete_tag and 1 worker), and
// check each time that exactly the blobs no remaining artifact references
// left the bucket, that every remaining artifact still pulls, that a
// re-push works, and that the registry's Redis blob-descriptor cache holds
// nothing for a deleted blob.
func TestHarborEndToEnd(t *testing.T) {
	src := harborSource(t)
	tarball := filepath.Join(src, "harbor-src-min.tgz")
	if _, err := os.Stat(tarball); err != nil {
		t.Skipf("Harbor's source is not here (%v): skipping Harbor end to end; put Harbor's snapshot at %s or set HARBOR_SOURCE", err, src)
	}
	postgresBin := findPostgres(t)
	redisServer := lookPath(t, "redis-server")

	harbor := buildHarbor(t, src, tarball)
	run, err := os.MkdirTemp("", "harborcheck-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as its own user when the test runs as root: the
	// run directory must be open to it.
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	registryCos := filepath.Join(run, "registry-cos")
	build(t, "../..", registryCos, "./cmd/registry")

	ports := freePorts(t, 6)
	pgPort, redisPort, registryPort, ctlPort, corePort, jobPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	startPostgres(t, postgresBin, filepath.Join(run, "pg"), pgPort)
	startProcess(t, exec.Command(redisServer, "--port", portString(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"))
	waitTCP(t, redisPort)
	cache := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redisPort), DB: 1})
	t.Cleanup(func() { cache.Close() })

	emulator := testenv.StartEmulator(t, costest.Options{})
	emulatorPort := emulator.URL[strings.LastIndexByte(emulator.URL, ':')+1:]
	storage := openBucket(t, emulator)

	// The registry, in Harbor's registry configuration on the cos driver.
	// Core follows blob redirects with the registry's basic auth, which COS
	// refuses on a presigned URL: the redirect host must differ from the
	// registry's host name, or Go keeps the Authorization header.
	hash, err := bcrypt.GenerateFromPassword([]byte(registryPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(run, "passwd"), registryUser+":"+string(hash)+"\n")
	registryConfig := filepath.Join(run, "registry.yml")
	writeFile(t, registryConfig, fmt.Sprintf(registryConfigTemplate, emulator.Bucket, emulator.Region, emulator.URL,
		"http://localhost:"+emulatorPort, emulator.SecretID, emulator.SecretKey, redisPort, registryPort, filepath.Join(run, "passwd")))
	startProcess(t, exec.Command(registryCos, "serve", registryConfig))
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/v2/", registryPort), http.StatusUnauthorized)

	ctlConfig := filepath.Join(run, "registryctl.yml")
	writeFile(t, ctlConfig, fmt.Sprintf("---\nprotocol: \"http\"\nport: %d\nlog_level: info\nregistry_config: %q\n", ctlPort, registryConfig))
	ctl := exec.Command(registryCos, "registryctl", "-c", ctlConfig)
	ctl.Env = append(os.Environ(), "JOBSERVICE_SECRET="+jobSecret, "CORE_SECRET="+coreSecret)
	startProcess(t, ctl)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/api/health", ctlPort), http.StatusOK)

	portal := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	portalListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go portal.Serve(portalListener)
	t.Cleanup(func() { portal.Close() })

	coreURL := fmt.Sprintf("http://127.0.0.1:%d", corePort)
	startCore(t, harbor, filepath.Join(run, "core"), map[string]string{
		"_REDIS_URL_CORE":                fmt.Sprintf("redis://127.0.0.1:%d/0?idle_timeout_seconds=30", redisPort),
		"_REDIS_URL_REG":                 fmt.Sprintf("redis://127.0.0.1:%d/1?idle_timeout_seconds=30", redisPort),
		"EXT_ENDPOINT":                   coreURL,
		"POSTGRESQL_PORT":                portString(pgPort),
		"REGISTRY_URL":                   fmt.Sprintf("http://127.0.0.1:%d", registryPort),
		"PORTAL_URL":                     "http://" + portalListener.Addr().String(),
		"TOKEN_SERVICE_URL":              coreURL + "/service/token",
		"CORE_URL":                       coreURL,
		"CORE_LOCAL_URL":                 coreURL,
		"JOBSERVICE_URL":                 fmt.Sprintf("http://127.0.0.1:%d", jobPort),
		"REGISTRY_CONTROLLER_URL":        fmt.Sprintf("http://127.0.0.1:%d", ctlPort),
		"PORT":                           portString(corePort),
		"REGISTRY_STORAGE_PROVIDER_NAME": "cos",
	})
	waitHTTP(t, coreURL+"/api/v2.0/ping", http.StatusOK)
	startJobservice(t, harbor, filepath.Join(run, "jobservice"), jobPort, redisPort, coreURL, registryPort, ctlPort)
	waitHealthy(t, coreURL)

	h := &harborClient{t: t, base: coreURL}
	h.call(http.MethodPost, "/api/v2.0/projects", map[string]any{"project_name": project, "metadata": map[string]string{"public": "false"}}, http.StatusCreated)

	// Images: A and B share two layers (one of several MiB), C is replaced
	// under app:v3 by D (C stays as an untagged artifact), and an index of
	// two images.
	base := registrytest.NewImage(t, 1, 6<<20, 3000)
	imgA, imgB, imgD := withLayer(t, base, 11), withLayer(t, base, 12), withLayer(t, base, 14)
	imgC := registrytest.NewImage(t, 3, 5000)
	index, children := registrytest.NewIndex(t, 5, 2, 2500)
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(fmt.Sprintf("127.0.0.1:%d/%s/%s", corePort, project, s), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	auth := remote.WithAuth(&authn.Basic{Username: adminUser, Password: adminPassword})
	pushImage := func(r string, img v1.Image) {
		t.Helper()
		if err := remote.Write(ref(r), img, auth); err != nil {
			t.Fatalf("pushing %s through Harbor: %v", r, err)
		}
	}
	pushImage("app:v1", imgA)
	pushImage("app:v2", imgB)
	pushImage("app:v3", imgC)
	pushImage("app:v3", imgD)
	if err := remote.WriteIndex(ref("multi:v1"), index, auth); err != nil {
		t.Fatalf("pushing the index through Harbor: %v", err)
	}
	pullImage(t, ref("app:v1"), imgA, auth)
	pullImage(t, ref("app:v2"), imgB, auth)
	pullImage(t, ref("app:v3"), imgD, auth)
	pullImage(t, ref("app@"+digestOf(t, imgC).String()), imgC, auth)
	pullIndex(t, ref("multi:v1"), index, children, auth)

	all := union(blobsOf(t, imgA), blobsOf(t, imgB), blobsOf(t, imgC), blobsOf(t, imgD), indexBlobs(t, index, children))
	expectBucket(t, storage, all, "after the pushes")

	// Garbage collection 1: app:v2 deleted, C untagged; 3 workers.
	h.call(http.MethodDelete, "/api/v2.0/projects/"+project+"/repositories/app/artifacts/"+digestOf(t, imgB).String(), nil, http.StatusOK)
	kept := union(blobsOf(t, imgA), blobsOf(t, imgD), indexBlobs(t, index, children))
	deleted := minus(all, kept)
	cached := cachedDigests(t, cache, deleted)
	if len(cached) == 0 {
		t.Fatalf("none of the %d blobs to delete is in the registry's blob-descriptor cache before GC: the cache check would prove nothing", len(deleted))
	}
	t.Logf("before GC: %d keys of the registry's Redis cache name the %d blobs GC is to delete", len(cached), len(deleted))
	h.gc(map[string]any{"delete_untagged": true, "workers": 3})
	expectBucket(t, storage, kept, "after GC with delete_untagged and 3 workers")
	if left := cachedDigests(t, cache, deleted); len(left) > 0 {
		t.Errorf("the blob-descriptor cache still describes deleted blobs: %v", left)
	}
	pullImage(t, ref("app:v1"), imgA, auth)
	pullImage(t, ref("app:v3"), imgD, auth)
	pullIndex(t, ref("multi:v1"), index, children, auth)

	// A re-push of a collected image works and pulls.
	pushImage("app:v2", imgB)
	pullImage(t, ref("app:v2"), imgB, auth)
	kept = union(kept, blobsOf(t, imgB))
	expectBucket(t, storage, kept, "after the re-push")

	// Garbage collection 2: the index deleted (its images go with it);
	// delete_tag, 1 worker.
	h.call(http.MethodDelete, "/api/v2.0/projects/"+project+"/repositories/multi/artifacts/v1", nil, http.StatusOK)
	kept = union(blobsOf(t, imgA), blobsOf(t, imgB), blobsOf(t, imgD))
	h.gc(map[string]any{"delete_untagged": false, "delete_tag": true, "workers": 1})
	expectBucket(t, storage, kept, "after GC with delete_tag and 1 worker")
	pullImage(t, ref("app:v1"), imgA, auth)
	pullImage(t, ref("app:v2"), imgB, auth)
	pullImage(t, ref("app:v3"), imgD, auth)
}

// registryConfigTemplate is Harbor's registry configuration (as Harbor's
// installer writes it) on the cos driver.
const registryConfigTemplate = `version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cos:
    bucket: %s
    region: %s
    endpoint: %s
    redirectendpoint: %s
    secretid: %s
    secretkey: %s
  cache:
    blobdescriptor: redis
  maintenance:
    uploadpurging:
      enabled: false
  delete:
    enabled: true
  redirect:
    disable: false
redis:
  addrs: [127.0.0.1:%d]
  db: 1
  readtimeout: 10s
  writetimeout: 10s
  dialtimeout: 10s
http:
  addr: 127.0.0.1:%d
  secret: placeholder
auth:
  htpasswd:
    realm: harbor-registry-basic-realm
    path: %s
validation:
  disabled: true
`

// harborBuild is where Harbor's source was unpacked and its binaries built.
type harborBuild struct {
	tree             string // the unpacked snapshot: src/, make/migrations, icons/
	core, jobservice string
}

// buildHarbor unpacks the snapshot and builds core and jobservice, once per
// snapshot: HARBOR_WORK, or a directory in the temporary directory named
// by the snapshot's hash, is reused when it holds both binaries.
func buildHarbor(t *testing.T, src, tarball string) harborBuild {
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	tree := os.Getenv("HARBOR_WORK")
	if tree == "" {
		tree = filepath.Join(os.TempDir(), "registry-cos-harbor-"+hex.EncodeToString(sum[:6]))
	}
	b := harborBuild{tree: tree, core: filepath.Join(tree, "bin", "harbor_core"), jobservice: filepath.Join(tree, "bin", "harbor_jobservice")}
	if exists(b.core) && exists(b.jobservice) {
		t.Logf("Harbor: reusing the build in %s", tree)
		return b
	}
	start := time.Now()
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	runCommand(t, exec.Command("tar", "-xzf", tarball, "-C", tree))
	harborSrc := filepath.Join(tree, "src")
	// Harbor imports one package of go.pinniped.dev, which the module proxy
	// does not serve: the snapshot carries it as a module.
	edit := exec.Command("go", "mod", "edit", "-replace", "go.pinniped.dev="+filepath.Join(src, "pinniped-stub"))
	edit.Dir = harborSrc
	runCommand(t, edit)
	build(t, harborSrc, b.core, "./core")
	build(t, harborSrc, b.jobservice, "./jobservice")
	t.Logf("Harbor: built core and jobservice in %v", time.Since(start).Round(time.Second))
	return b
}

// startCore starts Harbor's core in dir (its working directory must hold
// views/, migrations/ and icons/), with the environment of Harbor's
// template and env on top.
func startCore(t *testing.T, harbor harborBuild, dir string, env map[string]string) {
	mkdir(t, filepath.Join(dir, "secrets"))
	for link, target := range map[string]string{"views": "src/core/views", "migrations": "make/migrations", "icons": "icons"} {
		if err := os.Symlink(filepath.Join(harbor.tree, target), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "app.conf"), "appname = Harbor\nrunmode = prod\nenablegzip = true\n\n[prod]\nhttpport = "+env["PORT"]+"\n")
	writeFile(t, filepath.Join(dir, "secrets", "key"), randomHex(t, 8))
	// Core's token key must be PKCS#1: with PKCS#8, /service/token
	// answers 500.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "secrets", "private_key.pem"),
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	vars := map[string]string{
		"CONFIG_PATH":                              filepath.Join(dir, "app.conf"),
		"LOG_LEVEL":                                "info",
		"DATABASE_TYPE":                            "postgresql",
		"POSTGRESQL_HOST":                          "127.0.0.1",
		"POSTGRESQL_USERNAME":                      "postgres",
		"POSTGRESQL_PASSWORD":                      "root123",
		"POSTGRESQL_DATABASE":                      "registry",
		"POSTGRESQL_SSLMODE":                       "disable",
		"POSTGRESQL_MAX_IDLE_CONNS":                "10",
		"POSTGRESQL_MAX_OPEN_CONNS":                "100",
		"HARBOR_ADMIN_PASSWORD":                    adminPassword,
		"MAX_JOB_WORKERS":                          "4",
		"CORE_SECRET":                              coreSecret,
		"JOBSERVICE_SECRET":                        jobSecret,
		"WITH_TRIVY":                               "false",
		"READ_ONLY":                                "false",
		"RELOAD_KEY":                               "",
		"REGISTRY_CREDENTIAL_USERNAME":             registryUser,
		"REGISTRY_CREDENTIAL_PASSWORD":             registryPass,
		"CSRF_KEY":                                 "0123456789abcdef0123456789abcdef",
		"ROBOT_SCANNER_NAME_PREFIX":                "scanrobot",
		"PERMITTED_REGISTRY_TYPES_FOR_PROXY_CACHE": "docker-hub,harbor,docker-registry",
		"REPLICATION_ADAPTER_WHITELIST":            "docker-hub,docker-registry,harbor",
		"KEY_PATH":                                 filepath.Join(dir, "secrets", "key"),
		"TOKEN_PRIVATE_KEY_PATH":                   filepath.Join(dir, "secrets", "private_key.pem"),
		// Let garbage collection delete blobs younger than the default
		// two hours.
		"GC_TIME_WINDOW_HOURS": "0",
	}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(harbor.core)
	cmd.Dir = dir
	cmd.Env = environ(vars)
	startProcess(t, cmd)
}

// startJobservice starts Harbor's jobservice, which loads its
// configuration from core: core must be up.
func startJobservice(t *testing.T, harbor harborBuild, dir string, port, redisPort int, coreURL string, registryPort, ctlPort int) {
	logs := filepath.Join(dir, "logs")
	mkdir(t, logs)
	config := filepath.Join(dir, "config.yml")
	writeFile(t, config, fmt.Sprintf(`---
protocol: "http"
port: %d
worker_pool:
  workers: 4
  backend: "redis"
  redis_pool:
    redis_url: redis://127.0.0.1:%d/2?idle_timeout_seconds=30
    namespace: "harbor_job_service_namespace"
    idle_timeout_second: 3600
job_loggers:
  - name: "STD_OUTPUT"
    level: "INFO"
  - name: "FILE"
    level: "INFO"
    settings:
      base_dir: %q
    sweeper:
      duration: 1
      settings:
        work_dir: %q
loggers:
  - name: "STD_OUTPUT"
    level: "INFO"
reaper:
  max_update_hours: 24
  max_dangling_hours: 168
max_retrieve_size_mb: 10
`, port, redisPort, logs, logs))
	cmd := exec.Command(harbor.jobservice, "-c", config)
	cmd.Dir = dir
	cmd.Env = environ(map[string]string{
		"CORE_SECRET":                                coreSecret,
		"JOBSERVICE_SECRET":                          jobSecret,
		"CORE_URL":                                   coreURL,
		"REGISTRY_URL":                               fmt.Sprintf("http://127.0.0.1:%d", registryPort),
		"REGISTRY_CONTROLLER_URL":                    fmt.Sprintf("http://127.0.0.1:%d", ctlPort),
		"REGISTRY_CREDENTIAL_USERNAME":               registryUser,
		"REGISTRY_CREDENTIAL_PASSWORD":               registryPass,
		"JOBSERVICE_WEBHOOK_JOB_MAX_RETRY":           "3",
		"JOBSERVICE_WEBHOOK_JOB_HTTP_CLIENT_TIMEOUT": "3",
		"LOG_LEVEL":                                  "info",
	})
	startProcess(t, cmd)
}

// environ is PATH and HOME of this process plus vars, as a process
// environment: Harbor's components read many variables, and none of this
// process's should leak into them.
func environ(vars map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// startPostgres initialises a database cluster in dir and runs PostgreSQL
// on port with an empty "registry" database. As root, PostgreSQL runs as
// the postgres user (it refuses to run as root).
func startPostgres(t *testing.T, bin, dir string, port int) {
	mkdir(t, dir)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("PostgreSQL refuses to run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	asPostgres := func(cmd *exec.Cmd) *exec.Cmd {
		// In a directory the postgres user may enter.
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	data := filepath.Join(dir, "data")
	runCommand(t, asPostgres(exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")))
	startProcess(t, asPostgres(exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", portString(port), "-k", dir, "-c", "listen_addresses=127.0.0.1")))
	waitTCP(t, port)
	// The server accepts connections a moment before it accepts queries.
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command(filepath.Join(bin, "psql"), "-h", "127.0.0.1", "-p", portString(port), "-U", "postgres", "-c", "create database registry;").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating the database: %v: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// findPostgres finds the newest PostgreSQL of Debian's packages
// (/usr/lib/postgresql/<version>/bin) or PGBIN.
func findPostgres(t *testing.T) string {
	if dir := os.Getenv("PGBIN"); dir != "" {
		return dir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) < pgVersion(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if exists(filepath.Join(dirs[i], "initdb")) {
			return dirs[i]
		}
	}
	missing(t, "PostgreSQL (Debian's postgresql package, or PGBIN)")
	return ""
}

func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// lookPath finds a program the test needs.
func lookPath(t *testing.T, program string) string {
	path, err := exec.LookPath(program)
	if err != nil {
		missing(t, program)
	}
	return path
}

// missing fails the test in CI, which installs everything the test needs,
// and skips it elsewhere.
func missing(t *testing.T, what string) {
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (.ci/run installs it)", what)
	}
	t.Skipf("%s is not installed: skipping Harbor end to end", what)
}

// harborClient calls Harbor's API as Harbor's admin.
type harborClient struct {
	t    *testing.T
	base string
}

// call sends a JSON request and checks the status; it returns the
// response with its body read.
func (h *harborClient) call(method, path string, body any, want int) (*http.Response, []byte) {
	h.t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.base+path, reader)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(adminUser, adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	return resp, data
}

// gc runs Harbor's garbage collection now with parameters and waits for
// its job to succeed.
func (h *harborClient) gc(parameters map[string]any) {
	h.t.Helper()
	start := time.Now()
	resp, _ := h.call(http.MethodPost, "/api/v2.0/system/gc/schedule",
		map[string]any{"schedule": map[string]string{"type": "Manual"}, "parameters": parameters}, http.StatusCreated)
	job := resp.Header.Get("Location")
	if job == "" {
		h.t.Fatal("Harbor started a GC without saying where its status is (no Location)")
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		_, body := h.call(http.MethodGet, job, nil, http.StatusOK)
		var status struct {
			JobStatus string `json:"job_status"`
		}
		if err := json.Unmarshal(body, &status); err != nil {
			h.t.Fatalf("GET %s: %v: %s", job, err, body)
		}
		switch status.JobStatus {
		case "Success":
			h.t.Logf("Harbor GC %v: Success in %v", parameters, time.Since(start).Round(time.Millisecond))
			return
		case "Error", "Stopped":
			_, log := h.call(http.MethodGet, job+"/log", nil, http.StatusOK)
			h.t.Fatalf("Harbor GC %v: %s; its log:\n%s", parameters, status.JobStatus, log)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Harbor GC %v: still %q after 10 minutes", parameters, status.JobStatus)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitHealthy waits until Harbor reports every component healthy.
func waitHealthy(t *testing.T, coreURL string) {
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(coreURL + "/api/v2.0/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var health struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(body, &health) == nil && health.Status == "healthy" {
				return
			}
			last = string(body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Harbor is not healthy after 3 minutes: %s", last)
}

// blobSet is a set of digests.
type blobSet map[string]bool

func union(sets ...blobSet) blobSet {
	u := blobSet{}
	for _, s := range sets {
		for d := range s {
			u[d] = true
		}
	}
	return u
}

func minus(a, b blobSet) blobSet {
	m := blobSet{}
	for d := range a {
		if !b[d] {
			m[d] = true
		}
	}
	return m
}

func (s blobSet) sorted() []string {
	out := make([]string, 0, len(s))
	for d := range s {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// blobsOf is the manifest, config and layer digests of img.
func blobsOf(t *testing.T, img v1.Image) blobSet {
	set := blobSet{digestOf(t, img).String(): true}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	set[cfg.String()] = true
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		set[d.String()] = true
	}
	return set
}

// indexBlobs is the index's digest and the blobs of its images.
func indexBlobs(t *testing.T, index v1.ImageIndex, children []v1.Image) blobSet {
	set := blobSet{digestOf(t, index).String(): true}
	for _, c := range children {
		set = union(set, blobsOf(t, c))
	}
	return set
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// withLayer is base with one more layer of its own.
func withLayer(t *testing.T, base v1.Image, seed uint64) v1.Image {
	img, err := mutate.AppendLayers(base, static.NewLayer(testenv.RandomBytes(4000, seed), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pullImage pulls ref through Harbor and checks the manifest digest and
// every blob's content against want.
func pullImage(t *testing.T, ref name.Reference, want v1.Image, opts ...remote.Option) {
	t.Helper()
	got, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pulling %s through Harbor: %v", ref, err)
	}
	if g, w := digestOf(t, got), digestOf(t, want); g != w {
		t.Fatalf("pulling %s: manifest %s, want %s", ref, g, w)
	}
	if _, err := got.RawConfigFile(); err != nil {
		t.Fatalf("pulling the config of %s: %v", ref, err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pulling a layer of %s: %v", ref, err)
		}
		// go-containerregistry checks the digest as the layer is read.
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading a layer of %s: %v", ref, err)
		}
	}
}

// pullIndex pulls an index and each of its images.
func pullIndex(t *testing.T, ref name.Reference, want v1.ImageIndex, children []v1.Image, opts ...remote.Option) {
	t.Helper()
	got, err := remote.Index(ref, opts...)
	if err != nil {
		t.Fatalf("pulling index %s through Harbor: %v", ref, err)
	}
	if g, w := digestOf(t, got), digestOf(t, want); g != w {
		t.Fatalf("pulling %s: index %s, want %s", ref, g, w)
	}
	for _, c := range children {
		pullImage(t, ref.Context().Digest(digestOf(t, c).String()), c, opts...)
	}
}

// cachedDigests returns the digests of set that a key of the registry's
// blob-descriptor cache (Redis database 1) still names.
func cachedDigests(t *testing.T, cache *redis.Client, set blobSet) []string {
	var found []string
	ctx := context.Background()
	keys, err := cache.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("listing the registry's Redis keys: %v", err)
	}
	for _, d := range set.sorted() {
		for _, k := range keys {
			if strings.Contains(k, d) {
				found = append(found, k)
			}
		}
	}
	return found
}

// --- processes, ports, files ---

// startProcess starts cmd; it is stopped when the test ends, and what it
// printed is logged if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	testenv.StartProcess(t, cmd)
}

// waitHTTP waits until url answers with status.
func waitHTTP(t *testing.T, url string, status int) {
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 3 minutes (last: %s)", url, status, last)
}

// waitTCP waits until something listens on the local port.
func waitTCP(t *testing.T, port int) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d after a minute", port)
}

// freePorts returns n distinct loopback ports nothing listened on a moment
// ago.
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var listeners []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		l.Close()
	}
	return ports
}

func portString(port int) string { return strconv.Itoa(port) }

// build runs go build in dir.
func build(t *testing.T, dir, out, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	// The environment of the rest of the CI run, so that the build cache
	// of `go test ./...` serves this build too.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	runCommand(t, cmd)
}

func runCommand(t *testing.T, cmd *exec.Cmd) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// openBucket opens the cos driver on the emulator's bucket, to look at
// what is stored.
func openBucket(t *testing.T, emulator *costest.Server) storagedriver.StorageDriver {
	d, err := factory.Create(context.Background(), "cos", testenv.DriverParameters(emulator))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// expectBucket checks that the bucket holds exactly the blobs of want.
func expectBucket(t *testing.T, storage storagedriver.StorageDriver, want blobSet, when string) {
	t.Helper()
	got := blobSet{}
	err := storage.Walk(context.Background(), "/docker/registry/v2/blobs", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && path.Base(fi.Path()) == "data" {
			dir := path.Dir(fi.Path())
			got[path.Base(path.Dir(path.Dir(dir)))+":"+path.Base(dir)] = true
		}
		return nil
	})
	if notFound := (storagedriver.PathNotFoundError{}); err != nil && !errors.As(err, &notFound) {
		t.Fatalf("listing the bucket's blobs: %v", err)
	}
	extra, lost := minus(got, want), minus(want, got)
	if len(extra) > 0 || len(lost) > 0 {
		t.Fatalf("%s: the bucket holds %d blobs; left that should be gone: %v; gone that should be left: %v", when, len(got), extra.sorted(), lost.sorted())
	}
	t.Logf("%s: the bucket holds exactly the %d blobs of the remaining artifacts", when, len(got))
}
