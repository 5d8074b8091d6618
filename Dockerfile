# weightd container: multi-stage on Debian bookworm.
#
#   docker build -t weightd .
#   docker run -p 50051:50051 -p 9090:9090 -v /path/to/repo:/models:ro weightd
#
# The build stage installs the Debian packages that building weightd and
# weightctl needs (scripts/install-deps.sh --server) and builds those two. The runtime
# stage installs only the Debian packages that own the shared libraries those
# two binaries load (found with ldd + dpkg -S in the build stage), so it
# follows whatever the binaries link without a hand-kept list going stale.
# Neither links LibTorch (weightctl uses weightd_client_core only), so the
# image carries none of LibTorch's ~250 dependency packages.
# No network besides Debian's package mirrors.

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# Dependencies first: this layer is reused while only sources change.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh --server && rm -rf /var/lib/apt/lists/*
# Only what building weightd and weightctl reads, so that edits to tests,
# scripts or docs reuse the compiled layer.
COPY CMakeLists.txt /src/
COPY cmake /src/cmake
COPY third_party /src/third_party
COPY proto /src/proto
COPY core /src/core
COPY server /src/server
COPY client /src/client
WORKDIR /src
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIGHTD_BUILD_TESTS=OFF \
 && cmake --build /build --target weightd weightctl \
 && mkdir -p /out/bin \
 && cp "$(find /build -name weightd -type f -perm -u+x | head -n1)" /out/bin/weightd \
 && cp "$(find /build -name weightctl -type f -perm -u+x | head -n1)" /out/bin/weightctl \
 && strip /out/bin/weightd /out/bin/weightctl \
 && for b in /out/bin/*; do ldd "$b" | awk '/=> \//{print $3}'; done | sort -u \
    | while read -r lib; do \
        real="$(readlink -f "$lib")"; \
        dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || dpkg -S "$lib"; \
      done | cut -d: -f1 | sort -u > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt \
 && ! ldd /out/bin/weightd /out/bin/weightctl | grep "not found"

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -q \
 && xargs apt-get install -y -q --no-install-recommends ca-certificates < /tmp/runtime-packages.txt \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 weightd \
 && useradd --system --uid 10001 --gid weightd --home-dir /nonexistent --shell /usr/sbin/nologin weightd \
 && mkdir -p /models
COPY --from=build /out/bin/weightd /out/bin/weightctl /usr/local/bin/
# The default repository; mount the real one here (read-only is enough).
VOLUME /models
# gRPC (WeightService, AdminService, Health, reflection), the plaintext
# health-only port for kubelet probes when TLS is on (--health_listen, see
# deploy/k8s/overlays/tls) and Prometheus metrics.
EXPOSE 50051 8081 9090
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/weightd"]
CMD ["--repository=/models", "--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9090"]
