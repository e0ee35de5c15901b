package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a loopback address, "127.0.0.1:PORT", whose port nothing
// listened on a moment ago: for a server the test starts later, or for an
// address where nothing answers.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WriteFile writes content to a file called name in a new temporary
// directory and returns its path.
func WriteFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// GoBuild runs `go build flags... -o dst pkg` and reports a failure with
// what the compiler printed.
func GoBuild(dst, pkg string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", dst, pkg)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// SyncBuffer is a bytes.Buffer that one goroutine (or a process's stdout
// and stderr) may write while others read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits up to timeout until what was written contains s. It
// returns everything written by then and whether s was in it.
func (b *SyncBuffer) WaitFor(s string, timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		out := b.String()
		if strings.Contains(out, s) {
			return out, true
		}
		if time.Now().After(deadline) {
			return out, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process is a program a test runs, with everything it prints kept.
type Process struct {
	// Cmd is the command, started.
	Cmd *exec.Cmd
	// Output is what the process printed on stdout and stderr, for those
	// of the two the caller left unset before StartProcess.
	Output *SyncBuffer

	exited chan struct{}
	err    error // what Cmd.Wait returned, once exited is closed
}

// StartProcess starts cmd. When the test ends the process is stopped (an
// interrupt, then SIGKILL after 10s) and, if the test failed, what it
// printed is logged.
func StartProcess(tb testing.TB, cmd *exec.Cmd) *Process {
	tb.Helper()
	p := &Process{Cmd: cmd, Output: &SyncBuffer{}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Output
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Output
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if tb.Failed() {
			tb.Logf("%s printed:\n%s", strings.Join(cmd.Args, " "), p.Output.String())
		}
	})
	return p
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned: nil for an exit status of
// 0. It is meaningful once Exited is closed.
func (p *Process) Err() error { return p.err }

// WaitForHTTP polls url until it answers 200. It fails the test if the
// process exits first or timeout passes.
func (p *Process) WaitForHTTP(tb testing.TB, url string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			tb.Fatalf("%s exited (%v) before %s answered:\n%s", p.Cmd.Path, p.err, url, p.Output.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not answer 200 within %v:\n%s", url, timeout, p.Output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitForOutput waits until the process has printed s and returns all it
// printed by then. It fails the test if the process exits first or
// timeout passes.
func (p *Process) WaitForOutput(tb testing.TB, s string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		exited := false
		select {
		case <-p.exited:
			exited = true
		default:
		}
		// Read after looking at exited, so that what a process printed
		// just before it exited is seen.
		if out := p.Output.String(); strings.Contains(out, s) {
			return out
		}
		if exited {
			tb.Fatalf("%s exited (%v) before printing %q:\n%s", p.Cmd.Path, p.err, s, p.Output.String())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not print %q within %v:\n%s", p.Cmd.Path, s, timeout, p.Output.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as kill -9 does, and waits for it.
func (p *Process) Kill(tb testing.TB) {
	tb.Helper()
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("kill -9 of %s: %v", p.Cmd.Path, err)
	}
	<-p.exited
}

// errStopTimeout is what Stop reports for a process that ignored the
// interrupt.
var errStopTimeout = errors.New("did not exit after an interrupt")

// Stop interrupts the process, as Ctrl-C does, and waits up to timeout for
// it to exit; a process still running then is killed. It returns how the
// process exited (nil for status 0), or an error saying it had to be
// killed. Stopping a process that has exited returns how it exited.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s %w within %v", p.Cmd.Path, errStopTimeout, timeout)
	}
}
