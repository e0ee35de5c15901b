package costest

import (
	"context"
	"testing"
)

// TestServerClient pins what Server.Client hands out: one client per
// server, pointed at URL and ServiceURL, signing with the first credential
// and sending its session token (a temporary key is refused without it).
func TestServerClient(t *testing.T) {
	srv := startServer(t, Options{Credentials: []Credential{{SecretID: "AKIDtempClient", SecretKey: "k", SessionToken: "client-token"}}})
	c := srv.Client()
	if c != srv.Client() {
		t.Error("Client returns a new client on every call")
	}
	if c.BaseURL.BucketURL.String() != srv.URL || c.BaseURL.ServiceURL.String() != srv.ServiceURL {
		t.Errorf("BucketURL %s, ServiceURL %s; want %s, %s", c.BaseURL.BucketURL, c.BaseURL.ServiceURL, srv.URL, srv.ServiceURL)
	}
	putBytes(t, c, "k", []byte("v"))
	if _, _, err := c.Service.Get(context.Background()); err != nil {
		t.Errorf("Service.Get: %v", err)
	}
	if n := srv.Stats().Status["PutObject 200"]; n != 1 {
		t.Errorf("PutObject with the temporary key: %d answered 200", n)
	}
}

// TestOnlyDiskBackendPersists pins persistence as an optional capability:
// the disk backend has it, the memory backend does not (and so carries no
// methods that would do nothing).
func TestOnlyDiskBackendPersists(t *testing.T) {
	disk, err := newDiskBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mem backend = newMemoryBackend()
	if _, ok := mem.(persister); ok {
		t.Error("the memory backend implements persister")
	}
	if _, ok := backend(disk).(persister); !ok {
		t.Error("the disk backend does not implement persister")
	}
}
