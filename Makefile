# registry-cos: build, test and release.
#
#   make build      ./registry-cos for this machine
#   make test       every test (unit, emulator, end-to-end)
#   make release    dist/registry-cos-<version>-<os>-<arch>[.tar.gz] and dist/SHA256SUMS
#   make image      the container image (needs docker)
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
IMAGE    ?= registry-cos:$(VERSION)

VERSION_PKG := github.com/distribution/distribution/v3/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).version=$(VERSION) \
	-X $(VERSION_PKG).revision=$(REVISION) \
	-X $(VERSION_PKG).mainpkg=github.com/registry-cos/cos

# Static binaries: the registry needs no C library.
export CGO_ENABLED := 0

.PHONY: build test vet release image clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) $(PKG)

test:
	$(GO) test -timeout 75m ./...

vet:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

release: clean
	mkdir -p $(DIST)
	set -e; for platform in $(PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		name=$(BINARY)-$(VERSION)-$$os-$$arch; \
		echo "building $$name"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/$(BINARY) $(PKG); \
		cp LICENSE README.md cmd/registry/config-cos.yml $(DIST)/$$name/; \
		tar -C $(DIST) -czf $(DIST)/$$name.tar.gz $$name; \
		rm -rf $(DIST)/$$name; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS
	cat $(DIST)/SHA256SUMS

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

clean:
	rm -rf $(DIST) $(BINARY)
