package costest

import (
	"bytes"
	"context"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// TestDiskRestartMidMultipart restarts the server on the same Dir between
// two parts of an upload, then completes it.
func TestDiskRestartMidMultipart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	part1, part2 := randomBytes(1<<20, 1), randomBytes(777, 2)

	first, err := NewServer(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, first)
	putBytes(t, c, "kept", []byte("before restart"))
	putBytes(t, c, "replaced", []byte("old"))
	putBytes(t, c, "replaced", []byte("new"))
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "mp", nil)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := c.Object.UploadPart(ctx, "mp", init.UploadID, 1, bytes.NewReader(part1), nil)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := startServer(t, Options{Dir: dir})
	c = newClient(t, second)
	if got, _ := getBytes(t, c, "kept", nil); string(got) != "before restart" {
		t.Errorf("object lost across restart: %q", got)
	}
	if got, _ := getBytes(t, c, "replaced", nil); string(got) != "new" {
		t.Errorf("overwritten object after restart: %q", got)
	}
	lp, _, err := c.Object.ListParts(ctx, "mp", init.UploadID, nil)
	if err != nil || len(lp.Parts) != 1 || lp.Parts[0].ETag != r1.Header.Get("ETag") {
		t.Fatalf("ListParts after restart: %v %+v", err, lp)
	}
	r2, err := c.Object.UploadPart(ctx, "mp", init.UploadID, 2, bytes.NewReader(part2), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Object.CompleteMultipartUpload(ctx, "mp", init.UploadID, &cos.CompleteMultipartUploadOptions{Parts: []cos.Object{
		{PartNumber: 1, ETag: r1.Header.Get("ETag")}, {PartNumber: 2, ETag: r2.Header.Get("ETag")},
	}})
	if err != nil {
		t.Fatalf("Complete after restart: %v", err)
	}
	if got, _ := getBytes(t, c, "mp", nil); !bytes.Equal(got, append(append([]byte{}, part1...), part2...)) {
		t.Errorf("object completed after restart differs")
	}
}
