# vipd's container image, for the DaemonSet in deploy/kubernetes/:
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t REGISTRY/vipd:TAG .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
# Static: the runtime image needs no Go and no C library match.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /vipd ./cmd/vipd

FROM debian:bookworm-slim
# nftables: vipd programs its table by running nft (through knftables).
# iproute2: `ip addr`/`ip route` for looking at what vipd did, from
# kubectl exec. ca-certificates: https health checks and a kubeconfig
# whose server has a public certificate.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nftables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /vipd /usr/local/bin/vipd
# Runs as root, with the capabilities the pod grants (daemonset.yaml
# drops all but NET_ADMIN): Kubernetes gives added capabilities to root
# only, not to another user.
ENTRYPOINT ["/usr/local/bin/vipd"]
CMD ["run", "-c", "/etc/vipd/vipd.yaml"]
