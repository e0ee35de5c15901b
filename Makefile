# registry-cos: build, test and release.
#
#   make build      ./registry-cos for this machine
#   make test       every test (unit, emulator, end-to-end)
#   make release    dist/registry-cos-<version>-<os>-<arch>[.tar.gz], dist/SHA256SUMS,
#                   the image in dist/image and its digest in dist/IMAGE_DIGEST
#   make image      the container image as an OCI image layout in dist/image
#                   (linux/amd64 and linux/arm64; no Docker), named
#                   IMAGE_NAME:VERSION (what `podman load` calls it);
#                   its binary is also Harbor's registry controller
#                   (`registry-cos registryctl -c FILE`, docs/harbor.md)
#   make image-push IMAGE=registry.example.com/ns/registry-cos:v1.2.3
#                   push dist/image (credentials of `docker login`/`crane auth login`)
#
# The version stamped into `registry-cos --version` is VERSION, by default
# from `git describe`; override it with `make release VERSION=v1.2.3`.

GO       ?= go
BINARY   := registry-cos
PKG      := ./cmd/registry
DIST     := dist
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
IMAGE_PLATFORMS := linux/amd64 linux/arm64
IMAGE    ?=
# The repository the layout names the image after: the chart's default.
IMAGE_NAME ?= ccr.ccs.tencentyun.com/registry-cos/registry-cos
# File times and the creation time of the image: the last commit's, so the
# same commit builds the same image digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

VERSION_PKG := github.com/distribution/distribution/v3/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).version=$(VERSION) \
	-X $(VERSION_PKG).revision=$(REVISION) \
	-X $(VERSION_PKG).mainpkg=github.com/registry-cos/cos

# Static binaries: the registry needs no C library.
export CGO_ENABLED := 0

.PHONY: build test vet release image image-push clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) $(PKG)

test:
	$(GO) test -timeout 75m ./...

vet:
	@# Fails when gofmt lists a file, under any /bin/sh (dash included).
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) vet ./...

release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	set -e; for platform in $(PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		name=$(BINARY)-$(VERSION)-$$os-$$arch; \
		echo "building $$name"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/$(BINARY) $(PKG); \
		cp -r LICENSE README.md README.zh-CN.md docs cmd/registry/config-cos.yml $(DIST)/$$name/; \
		tar -C $(DIST) -czf $(DIST)/$$name.tar.gz $$name; \
		rm -rf $(DIST)/$$name; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS
	cat $(DIST)/SHA256SUMS
	$(MAKE) image
	cat $(DIST)/IMAGE_DIGEST

# The image: static binaries for each platform, then tools/imagebuild puts
# them, the CA bundle (Mozilla's roots from the x509roots/fallback module
# go.mod pins), a non-root user and cmd/registry/config-env.yml into an OCI
# index.
image:
	rm -rf $(DIST)/image $(DIST)/image-bin
	set -e; for platform in $(IMAGE_PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/image-bin/$$os-$$arch/$(BINARY) $(PKG); \
	done
	$(GO) run ./tools/imagebuild build -out $(DIST)/image -digest-file $(DIST)/IMAGE_DIGEST \
		-config cmd/registry/config-env.yml -name $(IMAGE_NAME) -version $(VERSION) -revision '$(REVISION)' \
		-created $(SOURCE_DATE_EPOCH) \
		$(foreach p,$(IMAGE_PLATFORMS),-binary $(p)=$(DIST)/image-bin/$(subst /,-,$(p))/$(BINARY))
	rm -rf $(DIST)/image-bin

image-push:
	@test -n "$(IMAGE)" || { echo "make image-push: set IMAGE=registry/repository:tag" >&2; exit 1; }
	test -f $(DIST)/image/index.json || $(MAKE) image
	$(GO) run ./tools/imagebuild push -layout $(DIST)/image $(IMAGE)

clean:
	rm -rf $(DIST) $(BINARY)
