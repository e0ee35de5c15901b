package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestUploadResumedAfterKill9 runs `registry-cos serve` as a process, kills
// it with SIGKILL while a chunked upload is half done (one PATCH
// acknowledged, the next one in flight), starts a new process on the same
// configuration and bucket, and resumes the upload from the offset the new
// process reports. The blob must come back intact and no multipart upload
// may be left open in the bucket.
func TestUploadResumedAfterKill9(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	configPath := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{}))

	const (
		firstChunk = 6*mib + 1 // over the 5 MiB part size: one part reaches COS
		// secondChunk is in flight when the process dies, after half of
		// it, enough to fill another part, has been sent.
		secondChunk = 10 * mib
		lastChunk   = 4*mib + 77
		totalLength = firstChunk + secondChunk + lastChunk
	)
	blob := testenv.RandomBytes(totalLength, 40)
	dgst := digest.FromBytes(blob)

	first := startServeProcess(t, configPath)
	location := startUpload(t, first.Registry(), "crash/app")
	location = patchChunk(t, location, blob[:firstChunk], 0)

	inFlight, abandon := sendStalledPatch(t, location, blob[firstChunk:firstChunk+secondChunk], firstChunk)
	first.Kill(t)
	abandon()
	if err := <-inFlight; err == nil {
		t.Fatalf("the PATCH in flight when the registry was killed succeeded")
	}

	second := startServeProcess(t, configPath)
	location = onRegistry(t, location, second.Registry())
	// The acknowledged chunk survived. Of the one in flight the registry
	// may have kept a prefix; the client resumes from whatever offset it
	// reports, as the distribution API says.
	offset := uploadOffset(t, location)
	if offset < firstChunk || offset > firstChunk+secondChunk/2 {
		t.Fatalf("after the restart the upload is at offset %d, want %d (the acknowledged PATCH) to %d (plus what was sent of the killed one)",
			offset, firstChunk, firstChunk+secondChunk/2)
	}
	t.Logf("the new process resumes the upload at offset %d (%d bytes of the killed PATCH kept)", offset, offset-firstChunk)
	location = patchChunk(t, location, blob[offset:firstChunk+secondChunk], int64(offset))
	finishUpload(t, location, dgst, blob[firstChunk+secondChunk:])
	fetchBlob(t, second.Registry(), "crash/app", dgst, totalLength)

	if open := openMultipartUploads(t, emulator); len(open) != 0 {
		t.Fatalf("after the resumed upload completed, %d multipart uploads are open: %v", len(open), open)
	}
}

// sendStalledPatch starts a PATCH of chunk at offset whose body stops after
// half of chunk, and reports the request's outcome on the returned channel.
// It returns once the first half has been handed to the connection; abandon
// ends the body with an error, as a client whose connection broke would.
func sendStalledPatch(t *testing.T, location string, chunk []byte, offset int) (outcome <-chan error, abandon func()) {
	t.Helper()
	body, writer := io.Pipe()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPatch, location, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(chunk))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+len(chunk)-1))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		done <- err
	}()
	if _, err := writer.Write(chunk[:len(chunk)/2]); err != nil {
		t.Fatalf("sending the first half of the PATCH: %v", err)
	}
	abandon = func() { writer.CloseWithError(errors.New("client gave up")) }
	t.Cleanup(abandon)
	// Give the registry a moment to read what it was sent.
	time.Sleep(200 * time.Millisecond)
	return done, abandon
}

// uploadOffset asks for an upload's progress and returns the offset at
// which the next chunk starts (the end of the Range header plus one).
func uploadOffset(t *testing.T, location string) int {
	t.Helper()
	resp, body := do(t, http.DefaultClient, http.MethodGet, location, nil, nil)
	expectStatus(t, resp, body, http.StatusNoContent)
	var start, end int
	if _, err := fmt.Sscanf(resp.Header.Get("Range"), "%d-%d", &start, &end); err != nil || start != 0 {
		t.Fatalf("GET %s: Range %q is not 0-END", location, resp.Header.Get("Range"))
	}
	return end + 1
}

// openMultipartUploads lists the multipart uploads open in the emulator's
// bucket, through the emulator's SDK client, as "key (upload ID)".
func openMultipartUploads(t *testing.T, emulator *costest.Server) []string {
	t.Helper()
	return listOpenUploads(t, emulator.Client())
}

// listOpenUploads lists the multipart uploads open in client's bucket.
func listOpenUploads(t *testing.T, client *cossdk.Client) []string {
	t.Helper()
	ctx := context.Background()
	var open []string
	opts := &cossdk.ObjectListUploadsOptions{MaxUploads: 1000}
	for {
		result, _, err := client.Object.ListUploads(ctx, opts)
		if err != nil {
			t.Fatalf("listing multipart uploads: %v", err)
		}
		for _, u := range result.Upload {
			open = append(open, fmt.Sprintf("%s (%s)", u.Key, u.UploadID))
		}
		if !result.IsTruncated {
			return open
		}
		opts.KeyMarker, opts.UploadIdMarker = result.NextKeyMarker, result.NextUploadIdMarker
	}
}
