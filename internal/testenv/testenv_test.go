package testenv

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
)

func TestRandomBytesAreReproducibleAndDistinct(t *testing.T) {
	a, b := RandomBytes(4096, 7), RandomBytes(4096, 7)
	if !bytes.Equal(a, b) {
		t.Fatal("RandomBytes(4096, 7) differs between two calls")
	}
	if bytes.Equal(a, RandomBytes(4096, 8)) {
		t.Fatal("seeds 7 and 8 give the same bytes")
	}
	// Seeds that differ only above the low 32 bits are distinct too.
	if bytes.Equal(RandomBytes(64, 1), RandomBytes(64, 1+1<<40)) {
		t.Fatal("seeds 1 and 1+2^40 give the same bytes")
	}
}

func TestPatternReaderBlocksDiffer(t *testing.T) {
	const size = 3*PatternBlockSize + 5
	got, err := io.ReadAll(NewPatternReader(1, size))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Fatalf("read %d bytes, want %d", len(got), size)
	}
	again, _ := io.ReadAll(NewPatternReader(1, size))
	if !bytes.Equal(got, again) {
		t.Fatal("two readers of the same seed and size differ")
	}
	for i := 1; i < 3; i++ {
		if bytes.Equal(got[:PatternBlockSize], got[i*PatternBlockSize:(i+1)*PatternBlockSize]) {
			t.Fatalf("block %d equals block 0", i)
		}
	}
	other, _ := io.ReadAll(NewPatternReader(2, PatternBlockSize))
	if bytes.Equal(got[:PatternBlockSize], other) {
		t.Fatal("seeds 1 and 2 give the same first block")
	}
}

// TestDriverParametersNameTheEmulator checks that the parameters name the
// emulator's endpoint, bucket and credential, and that every call returns
// a map of its own.
func TestDriverParametersNameTheEmulator(t *testing.T) {
	srv := StartEmulator(t, costest.Options{})
	p := DriverParameters(srv)
	for k, want := range map[string]string{"secretid": srv.SecretID, "secretkey": srv.SecretKey, "bucket": srv.Bucket, "region": srv.Region, "endpoint": srv.URL} {
		if p[k] != want {
			t.Errorf("parameter %s = %v, want %q", k, p[k], want)
		}
	}
	p["rootdirectory"] = "/x"
	if _, ok := DriverParameters(srv)["rootdirectory"]; ok {
		t.Error("a change to one DriverParameters map shows in the next")
	}
}

func TestSyncBufferWaitFor(t *testing.T) {
	var b SyncBuffer
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.Write([]byte("hello\n"))
	}()
	if out, ok := b.WaitFor("\n", 5*time.Second); !ok || out != "hello\n" {
		t.Fatalf("WaitFor = %q, %v; want %q, true", out, ok, "hello\n")
	}
	if _, ok := b.WaitFor("absent", 20*time.Millisecond); ok {
		t.Fatal("WaitFor found a string never written")
	}
}

func TestProcessOutputAndStop(t *testing.T) {
	p := StartProcess(t, exec.Command("sh", "-c", "echo ready; echo err >&2; exec sleep 60"))
	if out := p.WaitForOutput(t, "ready", 10*time.Second); !strings.Contains(out, "ready") {
		t.Fatalf("WaitForOutput returned %q", out)
	}
	if _, ok := p.Output.WaitFor("err", 10*time.Second); !ok {
		t.Fatalf("stderr is not in Output: %q", p.Output.String())
	}
	if err := p.Stop(10 * time.Second); err == nil {
		t.Fatal("a process ended by an interrupt reported a clean exit")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited is open after Stop")
	}
}
