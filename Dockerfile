# One Dockerfile for every binary under cmd/: APP picks which one, so a new
# service needs a build argument, not a new Dockerfile.
#
#   docker build --build-arg APP=worker --build-arg VERSION=$(git rev-parse --short HEAD) \
#     --build-arg PORT=8090 -t hostkit/worker:TAG .
#
# Targets, both producing the same image layout (binary /app, user 65532,
# writable working directory /home/nonroot, same labels and port):
#   (last, default)  builds from source in golang and ships on distroless
#                    static:nonroot. Needs BuildKit (cache mounts) and a registry.
#   local            packages a binary built on the host (bin/linux/${APP}, see
#                    `make image IMAGE_TARGET=local`) into scratch; needs neither BuildKit
#                    nor a registry, which is what the container tests use.
#
# No "# syntax=" line: it would make BuildKit pull a frontend image, and the
# built-in frontend already supports cache mounts.

ARG APP=pingapi
ARG VERSION=dev
ARG REVISION=unknown
# Where the source lives; the Makefile derives it from the module path.
ARG SOURCE=https://github.com/hostkit/hostkit
ARG PORT=8080
ARG GO_VERSION=1.27.3
# Base images: the runtime by tag and digest, so a build is reproducible
# (Dependabot, .github/dependabot.yml, bumps both). The builder is by tag
# only until its digest is recorded: no registry was reachable when the
# toolchain moved to 1.27.3; deploy/images_test.go lists it as the one
# exception.
ARG GO_IMAGE=golang:${GO_VERSION}-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:b7bb25d9f7c31d2bdd1982feb4dafcaf137703c7075dbe2febb41c24212b946f

# "local" comes first because the classic builder runs every stage above the
# requested target; first, it never touches the golang or distroless images.
FROM scratch AS local
ARG APP
ARG VERSION
ARG REVISION
ARG SOURCE
ARG PORT
LABEL org.opencontainers.image.title="hostkit-${APP}" \
      org.opencontainers.image.description="hostkit ${APP} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="scratch"
# The same account distroless calls nonroot, so both targets run as a user
# with a name and a home; COPY --chown creates the home owned by it, which the
# worker needs for its default store directory (./data/nats).
COPY deploy/image/etc/ /etc/
COPY --chown=65532:65532 deploy/image/home/ /home/
COPY bin/linux/${APP} /app
ENV HOME=/home/nonroot
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE ${PORT}
# Exec form: the binary is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["/app"]

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so editing code does not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG APP
ARG VERSION
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/app ./cmd/${APP}

FROM ${RUNTIME_IMAGE}
ARG APP
ARG VERSION
ARG REVISION
ARG SOURCE
ARG PORT
LABEL org.opencontainers.image.title="hostkit-${APP}" \
      org.opencontainers.image.description="hostkit ${APP} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/app /app
ENV HOME=/home/nonroot
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/app"]
