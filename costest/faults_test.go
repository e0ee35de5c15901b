package costest

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

func TestErrorRateIsRetriedBySDK(t *testing.T) {
	srv := startServer(t, Options{Seed: 1})
	c := newClient(t, srv)
	putBytes(t, c, "k", []byte("v"))
	srv.SetFaults(Faults{ErrorRate: 1})
	srv.ResetStats()
	_, err := c.Object.Get(context.Background(), "k", nil)
	if _, status := cosCode(err); status != 500 && status != 503 {
		t.Fatalf("GET under ErrorRate 1: %v", err)
	}
	st := srv.Stats()
	if st.Count("GetObject") != 3 || st.Faults["error"] != 3 {
		t.Errorf("SDK should retry 5xx 3 times: requests %v faults %v", st.Requests, st.Faults)
	}
	if st.Status["GetObject 500"]+st.Status["GetObject 503"] != 3 {
		t.Errorf("status counts = %v", st.Status)
	}
	// Half the requests fail: the SDK's retries get a seekable PUT through.
	srv.SetFaults(Faults{ErrorRate: 0.5})
	srv.ResetStats()
	for i := range 10 {
		if _, err := c.Object.Put(context.Background(), "r", bytes.NewReader([]byte{byte(i)}), nil); err != nil {
			if _, status := cosCode(err); status < 500 {
				t.Fatalf("PUT: %v", err)
			}
		}
	}
	if st := srv.Stats(); st.Count("PutObject") <= 10 || st.Faults["error"] == 0 {
		t.Errorf("expected retried PUTs: %v", st.Requests)
	}
}

func TestDropRate(t *testing.T) {
	srv := startServer(t, Options{Dir: t.TempDir(), Seed: 2})
	c := newClient(t, srv)
	ctx := context.Background()
	old := randomBytes(1<<20, 1)
	putBytes(t, c, "k", old)
	srv.SetFaults(Faults{DropRate: 1})
	srv.ResetStats()

	// A dropped PUT is never applied, even though the SDK retries it.
	_, err := c.Object.Put(ctx, "k", bytes.NewReader(randomBytes(1<<20, 2)), nil)
	if err == nil {
		t.Fatal("PUT under DropRate 1 succeeded")
	}
	if st := srv.Stats(); st.Count("PutObject") != 3 || st.Faults["drop"] != 3 {
		t.Errorf("dropped PUTs: %v %v", st.Requests, st.Faults)
	}
	// A dropped DELETE (no body) is not applied either.
	if _, err := c.Object.Delete(ctx, "k"); err == nil {
		t.Error("DELETE under DropRate 1 succeeded")
	}
	// A dropped GET cuts the body.
	resp, err := c.Object.Get(ctx, "k", nil)
	if err == nil {
		data, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("GET body of %d bytes read without error under DropRate 1", len(data))
		}
	}
	srv.SetFaults(Faults{})
	got, _ := getBytes(t, c, "k", nil)
	if !bytes.Equal(got, old) {
		t.Errorf("a dropped write changed the object")
	}
}

func TestCompleteErrorRate(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	id, parts := uploadParts(t, c, "k", [][]byte{[]byte("x")})
	putBytes(t, c, "src", []byte("s"))
	srv.SetFaults(Faults{CompleteErrorRate: 1})
	_, _, err := c.Object.CompleteMultipartUpload(ctx, "k", id, &cos.CompleteMultipartUploadOptions{Parts: parts})
	// SDK v0.7.75 reports a 200 <Error> on Complete as an XML decode error.
	if err == nil {
		t.Fatalf("Complete answered with <Error> reported success")
	}
	_, _, err = c.Object.Copy(ctx, "dst", srv.BucketHost()+"/src", nil)
	if err == nil {
		t.Fatalf("Copy answered with <Error> reported success")
	}
	if srv.Stats().Faults["complete-error"] < 2 {
		t.Errorf("faults = %v", srv.Stats().Faults)
	}
	srv.SetFaults(Faults{})
	if _, err := c.Object.Head(ctx, "dst", nil); err == nil {
		t.Error("a copy answered with <Error> was applied")
	}
	if _, _, err := c.Object.CompleteMultipartUpload(ctx, "k", id, &cos.CompleteMultipartUploadOptions{Parts: parts}); err != nil {
		t.Errorf("the upload must survive a failed Complete: %v", err)
	}
}

func TestLatencyAndBandwidth(t *testing.T) {
	srv := startServer(t, Options{Faults: Faults{Latency: 50 * time.Millisecond}})
	c := newClient(t, srv)
	start := time.Now()
	putBytes(t, c, "k", []byte("v"))
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("PUT took %v, want at least the 50ms latency", d)
	}
	srv.SetFaults(Faults{Bandwidth: 1e6})
	data := randomBytes(300_000, 1)
	start = time.Now()
	putBytes(t, c, "b", data)
	getBytes(t, c, "b", nil)
	if d := time.Since(start); d < 550*time.Millisecond {
		t.Errorf("600 kB at 1 MB/s took %v", d)
	}
	if f := srv.Faults(); f.Bandwidth != 1e6 {
		t.Errorf("Faults() = %+v", f)
	}
}

func TestListLag(t *testing.T) {
	const lag = 300 * time.Millisecond
	srv := startServer(t, Options{Faults: Faults{ListLag: lag}})
	c := newClient(t, srv)
	ctx := context.Background()
	list := func() []string {
		r, _, err := c.Bucket.Get(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return listNames(r)
	}
	putBytes(t, c, "k", []byte("v"))
	if got := list(); len(got) != 0 {
		t.Errorf("new key listed before the lag: %v", got)
	}
	getBytes(t, c, "k", nil) // read-after-write is immediate
	init, _, _ := c.Object.InitiateMultipartUpload(ctx, "u", nil)
	if r, _, _ := c.Object.ListUploads(ctx, nil); len(r.Upload) != 0 {
		t.Errorf("new upload listed before the lag")
	}
	time.Sleep(lag + 50*time.Millisecond)
	if got := list(); len(got) != 1 {
		t.Errorf("key not listed after the lag: %v", got)
	}
	if r, _, _ := c.Object.ListUploads(ctx, nil); len(r.Upload) != 1 || r.Upload[0].UploadID != init.UploadID {
		t.Errorf("upload not listed after the lag")
	}
	c.Object.Delete(ctx, "k")
	if got := list(); len(got) != 1 {
		t.Errorf("deleted key vanished before the lag: %v", got)
	}
	time.Sleep(lag + 50*time.Millisecond)
	if got := list(); len(got) != 0 {
		t.Errorf("deleted key still listed after the lag: %v", got)
	}
}
