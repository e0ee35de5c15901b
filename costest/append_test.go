package costest

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestAppendObject(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	pos, _, err := c.Object.Append(ctx, "log", 0, strings.NewReader("hello "), nil)
	if err != nil || pos != 6 {
		t.Fatalf("first append: pos %d, %v", pos, err)
	}
	pos, resp, err := c.Object.Append(ctx, "log", pos, strings.NewReader("world"), nil)
	if err != nil || pos != 11 {
		t.Fatalf("second append: pos %d, %v", pos, err)
	}
	if resp.Header.Get("x-cos-hash-crc64ecma") == "" {
		t.Errorf("append must return the object CRC")
	}
	got, gresp := getBytes(t, c, "log", nil)
	if string(got) != "hello world" || gresp.Header.Get("x-cos-object-type") != "appendable" {
		t.Errorf("appended object = %q, headers %v", got, gresp.Header)
	}
	_, _, err = c.Object.Append(ctx, "log", 3, strings.NewReader("x"), nil)
	wantCode(t, err, "AppendPositionErr", http.StatusConflict)
	putBytes(t, c, "plain", []byte("p"))
	_, _, err = c.Object.Append(ctx, "plain", 1, strings.NewReader("x"), nil)
	wantCode(t, err, "ObjectNotAppendable", http.StatusConflict)
	_, _, err = c.Object.Copy(ctx, "copy", srv.BucketHost()+"/log", nil)
	wantCode(t, err, "InvalidRequest", http.StatusBadRequest)
	// A PUT turns the key back into a normal object.
	putBytes(t, c, "log", []byte("n"))
	if hresp, _ := c.Object.Head(ctx, "log", nil); hresp.Header.Get("x-cos-object-type") != "" {
		t.Errorf("PUT did not make the object normal")
	}
}
