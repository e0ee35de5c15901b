package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// TestTenantRootDirectories runs two registries on one bucket with the
// root directories "tenants/a" and "tenants/ab" (one a string prefix of
// the other, the case a prefix match gets wrong). Tenant a deletes a tag,
// purges uploads and garbage-collects untagged manifests; tenant b's keys,
// its images and its abandoned upload must come through unchanged, and
// each catalog lists only its own repositories.
func TestTenantRootDirectories(t *testing.T) {
	ctx := context.Background()
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	a := startRegistry(t, emulator, registryOptions{RootDirectory: "tenants/a"})
	b := startRegistry(t, emulator, registryOptions{RootDirectory: "tenants/ab"})
	imgA, imgB := registrytest.NewImage(t, 1, 4096), registrytest.NewImage(t, 2, 4096)
	push(t, a.Ref(t, "app:1"), imgA)
	push(t, a.Ref(t, "only-a:2"), registrytest.NewImage(t, 3, 4096))
	push(t, b.Ref(t, "app:1"), imgB)
	push(t, b.Ref(t, "only-b:2"), registrytest.NewImage(t, 4, 4096))
	startUpload(t, b, "app") // abandoned: b's purger's, never a's
	// Each commit's Delete of its upload directory ends in the background;
	// what it removes then is no damage done by tenant a.
	a.Wait(t)
	b.Wait(t)

	params := emulatorParameters(emulator)
	bucket, err := cos.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	keysUnder := func(root string) []string {
		var out []string
		err := bucket.Walk(ctx, "/", func(fi storagedriver.FileInfo) error {
			if !fi.IsDir() && strings.HasPrefix(fi.Path(), root+"/") {
				out = append(out, fi.Path())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	beforeB := keysUnder("/tenants/ab")
	if !slices.ContainsFunc(beforeB, func(k string) bool { return strings.Contains(k, "/_uploads/") }) {
		t.Fatalf("tenant b's abandoned upload is not stored: %v", beforeB)
	}

	if err := remote.Delete(a.Ref(t, "only-a:2")); err != nil {
		t.Fatalf("deleting a tag of tenant a: %v", err)
	}
	params.RootDirectory = "tenants/a"
	tenantA, err := cos.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := storage.PurgeUploads(ctx, tenantA, time.Now().Add(time.Hour), true); len(errs) > 0 {
		t.Fatalf("purging tenant a's uploads: %v", errs)
	}
	if err := tenantA.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	configA := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{RootDirectory: "tenants/a"}))
	if out, err := runBinary(t, "garbage-collect", "--delete-untagged", "--min-age", "0", configA); err != nil {
		t.Fatalf("garbage-collect of tenant a: %v\n%s", err, out)
	}
	var walkedA []string
	if err := tenantA.Walk(ctx, "/", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			walkedA = append(walkedA, "/tenants/a"+fi.Path())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysUnder("/tenants/a"); !slices.Equal(walkedA, got) {
		t.Errorf("tenant a walks\n%v\nbut holds\n%v", walkedA, got)
	}

	if afterB := keysUnder("/tenants/ab"); !slices.Equal(beforeB, afterB) {
		t.Errorf("tenant b's keys changed under tenant a's delete, purge and GC:\nbefore %v\nafter  %v", beforeB, afterB)
	}
	if got := listAll(t, a.URL+"/v2/_catalog", "repositories"); !slices.Equal(got, []string{"app", "only-a"}) {
		t.Errorf("tenant a's catalog: %v", got)
	}
	if got := listAll(t, b.URL+"/v2/_catalog", "repositories"); !slices.Equal(got, []string{"app", "only-b"}) {
		t.Errorf("tenant b's catalog: %v", got)
	}
	pullAndVerifyImage(t, a.Ref(t, "app:1"), imgA)
	pullAndVerifyImage(t, b.Ref(t, "app:1"), imgB)
}
