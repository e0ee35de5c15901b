package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestDebugListenerServesProfilesOnlyWhenAsked runs `registry-cos serve`
// with a debug listener and Prometheus metrics, as the chart does: metrics
// and the health check answer, pprof and expvar do not (they would hand the
// process's memory to whoever reaches the metrics Service), unless serve
// is started with --debug-pprof.
func TestDebugListenerServesProfilesOnlyWhenAsked(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	configPath := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(configPath, []byte(registryConfigYAML(emulator, registryOptions{})), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags    []string
		profiles int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--debug-pprof"}, http.StatusOK},
	} {
		addr, debugAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
		cmd := exec.Command(registryBinary(t), append(append([]string{"serve"}, tc.flags...), configPath)...)
		cmd.Env = append(os.Environ(), "REGISTRY_HTTP_ADDR="+addr, "REGISTRY_HTTP_DEBUG_ADDR="+debugAddr,
			"REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED=true")
		p := testenv.StartProcess(t, cmd)
		p.WaitForHTTP(t, "http://"+addr+"/v2/", 30*time.Second)
		p.WaitForHTTP(t, "http://"+debugAddr+"/metrics", 30*time.Second)
		for path, want := range map[string]int{
			"/metrics":             http.StatusOK,
			"/debug/health":        http.StatusOK,
			"/debug/pprof/":        tc.profiles,
			"/debug/pprof/cmdline": tc.profiles,
			"/debug/pprof/heap":    tc.profiles,
			"/debug/vars":          tc.profiles,
			"//debug/./pprof/heap": tc.profiles, // cleaned by the mux, then judged again
			"/debug/pprof/../vars": tc.profiles,
		} {
			resp, err := http.Get("http://" + debugAddr + path)
			if err != nil {
				t.Fatalf("serve %v: GET %s: %v", tc.flags, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("serve %v: GET %s on the debug listener = %d, want %d", tc.flags, path, resp.StatusCode, want)
			}
		}
		if err := p.Stop(30 * time.Second); err != nil {
			t.Logf("stopping serve %v: %v", tc.flags, err)
		}
	}
}
