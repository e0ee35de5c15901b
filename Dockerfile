# syntax=docker/dockerfile:1
#
# registry-cos: the container registry with the Tencent Cloud COS driver.
#
#   docker build --build-arg VERSION=v1.2.3 -t registry-cos .
#   docker run -p 5000:5000 \
#     -e REGISTRY_STORAGE_COS_SECRETID=... -e REGISTRY_STORAGE_COS_SECRETKEY=... \
#     -e REGISTRY_STORAGE_COS_REGION=ap-guangzhou \
#     -e REGISTRY_STORAGE_COS_BUCKET=registry-1250000000 \
#     -e REGISTRY_HTTP_SECRET=... registry-cos
#
# The default configuration (/etc/registry/config.yml, from
# cmd/registry/config-env.yml) takes every storage parameter from
# REGISTRY_STORAGE_COS_* variables; mount another file over it to change more.
# The same image runs Harbor's registry controller with the command
# `registryctl -c /etc/registryctl/config.yml` (docs/harbor.md).
#
# Without Docker, `make image` builds the same image (same files, user, port,
# entrypoint, command and labels; see internal/imagebuild) as an OCI image
# layout for linux/amd64 and linux/arm64, and `make image-push IMAGE=...`
# pushes it.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=v0.0.0-docker
ARG REVISION=
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w \
        -X github.com/distribution/distribution/v3/version.version=${VERSION} \
        -X github.com/distribution/distribution/v3/version.revision=${REVISION} \
        -X github.com/distribution/distribution/v3/version.mainpkg=github.com/registry-cos/cos" \
      -o /out/registry-cos ./cmd/registry
# The CA bundle: Mozilla's NSS roots from the golang.org/x/crypto/x509roots/fallback
# module at the version go.mod pins, the same bundle `make image` installs.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out/etc/ssl/certs && go run ./tools/imagebuild cabundle -out /out/etc/ssl/certs/ca-certificates.crt
# The non-root user, as passwd/group entries; /tmp for temporary files.
RUN mkdir -p /out/etc /out/tmp && chmod 1777 /out/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nregistry:x:10001:10001:registry-cos:/nonexistent:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nregistry:x:10001:\n' > /out/etc/group

# Nothing but the static binary, the CA bundle (https to COS) and the user.
FROM scratch
ARG VERSION=v0.0.0-docker
ARG REVISION=
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/tmp /tmp
COPY --from=build /out/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY cmd/registry/config-env.yml /etc/registry/config.yml
COPY --from=build /out/registry-cos /usr/local/bin/registry-cos
USER 10001:10001
EXPOSE 5000
# Trace export off: Distribution otherwise sends traces to https://localhost:4318
# and logs every failed export at error level. No REGISTRY_* variable: the
# command names the configuration file, and the registry reports an unknown
# REGISTRY_* variable on a plain-text line before its log starts.
ENV PATH=/usr/local/bin OTEL_TRACES_EXPORTER=none
LABEL org.opencontainers.image.title=registry-cos \
      org.opencontainers.image.description="CNCF Distribution registry with the Tencent Cloud COS storage driver" \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.licenses=Apache-2.0
ENTRYPOINT ["/usr/local/bin/registry-cos"]
CMD ["serve", "/etc/registry/config.yml"]
