package costest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/registry-cos/cos/costest"
)

// ExampleNewServer starts an in-memory emulator, writes an object with the
// client Server.Client returns, reads it back and lists the buckets.
func ExampleNewServer() {
	srv, err := costest.NewServer(costest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	c := srv.Client()
	if _, err := c.Object.Put(ctx, "hello.txt", strings.NewReader("hello, COS"), nil); err != nil {
		log.Fatal(err)
	}
	resp, err := c.Object.Get(ctx, "hello.txt", nil)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body), resp.Header.Get("ETag"))

	buckets, _, err := c.Service.Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range buckets.Buckets {
		fmt.Println(b.Name, b.Region)
	}
	fmt.Println(srv.Stats().Count("PutObject"), "PUT")
	// Output:
	// hello, COS "553b0760610ac3f1a18477928fd98c45"
	// registry-1250000000 ap-guangzhou
	// 1 PUT
}
