package cos_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
)

// Use the driver as a library: typed parameters, then New. Here the bucket
// is served by the costest emulator; against COS, leave Endpoint empty.
func ExampleNew() {
	srv, err := costest.NewServer(costest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = srv.SecretID, srv.SecretKey
	params.Bucket, params.Region = srv.Bucket, srv.Region
	params.Endpoint = srv.URL // omit for real COS: https://<bucket>.cos.<region>.myqcloud.com
	params.RootDirectory = "/registry"

	ctx := context.Background()
	driver, err := cos.New(ctx, params)
	if err != nil {
		log.Fatal(err)
	}
	if err := driver.PutContent(ctx, "/hello.txt", []byte("hello, COS")); err != nil {
		log.Fatal(err)
	}
	content, err := driver.GetContent(ctx, "/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(content))
	// Output: hello, COS
}

// Build the driver from the untyped map a registry configuration gives, as
// the factory the package registers as "cos" does for `storage: cos:`.
func ExampleFromParameters() {
	srv, err := costest.NewServer(costest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	driver, err := cos.FromParameters(ctx, map[string]any{
		"secretid":  srv.SecretID,
		"secretkey": srv.SecretKey,
		"bucket":    srv.Bucket,
		"region":    srv.Region,
		"endpoint":  srv.URL,
		"chunksize": "16MiB",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(driver.Name())
	// Output: cos
}

// Stream a large file: full chunks are uploaded in the background as
// multipart parts; Commit makes the content readable.
func ExampleDriver_Writer() {
	srv, err := costest.NewServer(costest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = srv.SecretID, srv.SecretKey
	params.Bucket, params.Region, params.Endpoint = srv.Bucket, srv.Region, srv.URL
	ctx := context.Background()
	driver, err := cos.New(ctx, params)
	if err != nil {
		log.Fatal(err)
	}

	w, err := driver.Writer(ctx, "/uploads/data", false)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader(strings.Repeat("x", 20<<20))); err != nil {
		log.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	info, err := driver.Stat(ctx, "/uploads/data")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Size(), "bytes,", srv.Stats().Count("UploadPart"), "parts")

	_, err = driver.Stat(ctx, "/missing")
	_, notFound := err.(storagedriver.PathNotFoundError)
	fmt.Println("missing path:", notFound)
	// Output:
	// 20971520 bytes, 2 parts
	// missing path: true
}
