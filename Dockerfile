# hydrant's image: one image for every subcommand (webhook, agent, controller, ...).
#
#   docker build --build-arg HYDRANT_REVISION=$(git rev-parse --short=12 HEAD) -t hydrant .
#
# The binary is the statically linked release (`cargo dist`, see .cargo/config.toml), so the
# runtime stage is distroless "static": no shell, no libc, no package manager, user 65532.
# `hydrant --version` prints the version and the revision given here.

FROM docker.io/library/rust:1.95-bookworm AS build
ARG HYDRANT_REVISION=unknown
ENV HYDRANT_REVISION=${HYDRANT_REVISION}
WORKDIR /src
COPY . .
# The release profile keeps the symbol table (tests/benches/symbol_order.py reads it); the image
# does not need it. Stripping leaves the loaded segments as they are.
RUN cargo dist --locked \
 && cp target/x86_64-unknown-linux-gnu/release/hydrant /hydrant \
 && strip --strip-all /hydrant \
 && /hydrant --version

# The variant with a shell, for agent-inject-command-* commands the default image cannot run
# (pipes, &&, redirections, scripts): busybox's sh and tools on the same distroless base.
# Signalling commands (kill -HUP $(pidof nginx), pkill -HUP nginx, kill -s HUP 1) need no shell:
# the injector turns them into `hydrant signal`. Tag it <version>-shell, the suffix by which the
# injector knows an agent image has /bin/sh:
#
#   docker build --target shell -t hydrant:0.1.0-shell .
FROM docker.io/library/busybox:1.37-musl AS busybox

FROM gcr.io/distroless/static-debian12:nonroot AS shell
COPY --from=busybox /bin/busybox /bin/busybox
USER 0:0
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=build /hydrant /usr/local/bin/hydrant
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hydrant"]

# The default image, the last stage: no shell at all.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hydrant /usr/local/bin/hydrant
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hydrant"]
