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
# The default configuration (/etc/registry-cos/config.yml, from
# cmd/registry/config-env.yml) takes every storage parameter from
# REGISTRY_STORAGE_COS_* variables; mount another file over it to change more.

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

FROM alpine:3.22
# CA certificates for https to COS; tzdata for readable log times.
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 registry && adduser -S -D -H -u 10001 -G registry registry
COPY --from=build /out/registry-cos /usr/local/bin/registry-cos
COPY cmd/registry/config-env.yml /etc/registry-cos/config.yml
USER 10001:10001
EXPOSE 5000
ENV REGISTRY_CONFIGURATION_PATH=/etc/registry-cos/config.yml
ENTRYPOINT ["/usr/local/bin/registry-cos"]
CMD ["serve", "/etc/registry-cos/config.yml"]
