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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hydrant /usr/local/bin/hydrant
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hydrant"]
