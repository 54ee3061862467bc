# nats-server at the version go.mod requires (github.com/nats-io/nats-server/v2),
# built on the host by `make image-nats` into bin/linux/nats-server and
# packaged on scratch: the server the cluster runs is the one the tests run,
# and nothing is pulled from a registry. The binary is also the preStop tool
# (`/nats-server --signal ldm=PIDFILE`), so no shell is needed.
FROM scratch
ARG VERSION=unknown
LABEL org.opencontainers.image.title="nats-server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/nats-io/nats-server" \
      org.opencontainers.image.base.name="scratch"
COPY bin/linux/nats-server /nats-server
USER 1000:1000
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
