# popgate in a container: Debian 12, built from this tree, run as a
# non-root user. docs/operations.md ("Container") has the run command.
#
#   docker build -t popgate:0.1.0 .
#   docker run --security-opt seccomp=deploy/seccomp/popgate.json \
#     -v /etc/popgate:/etc/popgate:ro -p 110:110 -p 995:995 popgate:0.1.0
#
# The seccomp profile matters: Docker's default profile blocks io_uring
# (since Docker 25.0) and popgate cannot run without it; it then exits with
# one line that says so.

# ---- build: the build dependencies and a release build of the binary only.
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      liburing-dev android-libboringssl-dev libabsl-dev libtomlplusplus-dev \
      libcrypt-dev libargon2-dev libsodium-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX=/usr \
      -DPOPGATE_BUILD_TESTS=OFF -DPOPGATE_BUILD_BENCH=OFF \
 && ninja -C /build popgate \
 && DESTDIR=/out cmake --install /build
# The packages that hold the libraries the binary loads: the run stage
# installs exactly those (a new library dependency needs no edit here).
RUN ldd /out/usr/sbin/popgate | awk '/=> \//{print $3}' \
    | while read -r lib; do \
        dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")"; \
      done | cut -d: -f1 | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

# ---- run: Debian 12 slim, the run-time libraries, the binary, no shell
# needed (the Kubernetes preStop hook uses /bin/sleep from coreutils).
FROM debian:12-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# ca-certificates: backend_tls verifies against the system store when a
# tenant names no ca_file.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --system --gid 10110 popgate \
 && useradd --system --uid 10110 --gid popgate --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin popgate \
 && mkdir -p /etc/popgate
COPY --from=build /out/usr/sbin/popgate /usr/sbin/popgate
COPY --from=build /out/usr/share/doc/popgate/examples /usr/share/doc/popgate/examples
USER popgate:popgate
# 110: POP3 with STLS, 995: implicit TLS (what the example config opens).
EXPOSE 110 995
# SIGTERM drains (shutdown_grace); give `docker stop -t` at least that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/popgate"]
CMD ["--config", "/etc/popgate/popgate.toml"]
