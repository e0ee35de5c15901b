// Command imagebuild builds and pushes the registry-cos container image with
// no container engine (see internal/imagebuild); `make image` and
// `make image-push` run it.
//
//	imagebuild build -out dist/image -config cmd/registry/config-env.yml \
//	    -name ccr.ccs.tencentyun.com/registry-cos/registry-cos \
//	    -version v1.2.3 -revision abc123 \
//	    -binary linux/amd64=dist/image-bin/linux-amd64/registry-cos \
//	    -binary linux/arm64=dist/image-bin/linux-arm64/registry-cos
//	imagebuild push -layout dist/image registry.example.com/registry-cos:v1.2.3
//	imagebuild cabundle -out ca-certificates.crt
//
// build prints the index digest and, with -digest-file, writes it there.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/registry-cos/cos/internal/imagebuild"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	case "cabundle":
		err = caBundle(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", strings.TrimPrefix(err.Error(), "imagebuild: "))
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: imagebuild build -out DIR -config FILE -binary OS/ARCH=PATH... | imagebuild push -layout DIR IMAGE | imagebuild cabundle -out FILE")
	os.Exit(2)
}

// binaries collects repeated -binary os/arch=path flags.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	platform, path, ok := strings.Cut(v, "=")
	if !ok || platform == "" || path == "" {
		return fmt.Errorf("want OS/ARCH=PATH, got %q", v)
	}
	b[platform] = path
	return nil
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	opts := imagebuild.Options{Binaries: binaries{}}
	fs.Var(binaries(opts.Binaries), "binary", "`OS/ARCH=PATH` of a static registry-cos binary (repeat per platform)")
	out := fs.String("out", "dist/image", "write the OCI image layout to `DIR`")
	digestFile := fs.String("digest-file", "", "also write the index digest to `FILE`")
	created := fs.String("created", "", "creation time, Unix seconds (default: SOURCE_DATE_EPOCH, else 0)")
	fs.StringVar(&opts.Config, "config", "cmd/registry/config-env.yml", "configuration `FILE` installed as "+imagebuild.ConfigPath)
	fs.StringVar(&opts.CABundle, "ca", "", "CA bundle `FILE` installed as "+imagebuild.CAPath+" (default: Mozilla's roots from the golang.org/x/crypto/x509roots/fallback module go.mod pins)")
	name := fs.String("name", imagebuild.DefaultName, "the repository the layout names the image after (`NAME`:VERSION)")
	fs.StringVar(&opts.Version, "version", "", "version label")
	fs.StringVar(&opts.Revision, "revision", "", "revision label (git commit)")
	fs.StringVar(&opts.Source, "source", "", "source repository URL label")
	_ = fs.Parse(args)
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	epoch := *created
	if epoch == "" {
		epoch = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("creation time %q: want Unix seconds", epoch)
		}
		opts.Created = time.Unix(sec, 0)
	}
	idx, err := imagebuild.Build(opts)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteLayout(*out, idx, *name, opts.Version); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if *digestFile != "" {
		if err := os.WriteFile(*digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%s %s\n", *out, digest)
	return nil
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	dir := fs.String("layout", "dist/image", "the OCI image layout `DIR` that build wrote")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return fmt.Errorf("push wants one image reference, such as ccr.ccs.tencentyun.com/NAMESPACE/registry-cos:v1.2.3")
	}
	idx, err := imagebuild.ReadLayout(*dir)
	if err != nil {
		return err
	}
	if err := imagebuild.Push(fs.Arg(0), idx); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", fs.Arg(0), digest)
	return nil
}

// caBundle writes the image's pinned CA bundle (the Dockerfile installs it).
func caBundle(args []string) error {
	fs := flag.NewFlagSet("cabundle", flag.ExitOnError)
	out := fs.String("out", "", "write the PEM bundle to `FILE`")
	_ = fs.Parse(args)
	if *out == "" || fs.NArg() != 0 {
		return fmt.Errorf("cabundle wants -out FILE and nothing else")
	}
	return os.WriteFile(*out, imagebuild.PinnedCABundle(), 0o644)
}
