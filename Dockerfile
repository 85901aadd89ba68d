# ironlb images, from one Dockerfile:
#   docker build -t ironlb:0.1.0 .                 controller, speaker and CLI (default target)
#   docker build --target frr -t ironlb-frr:0.1.0 .  FRR sidecar: FRR 8.4 + frr-reload.py + our reloader
# Stage "build" compiles the TypeScript and the native L2 helper; the others carry runtime files only.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc make libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY native ./native
COPY src ./src
COPY bench ./bench
COPY templates ./templates
COPY deploy/crds ./deploy/crds
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS app
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/build/ironlb-l2 ./native/build/ironlb-l2
COPY package.json ./
COPY bin ./bin
COPY templates ./templates
COPY deploy/crds ./deploy/crds
COPY frr ./frr

# FRR sidecar: Debian's FRR (the version the project is tested against) plus Node for the reloader.
FROM app AS frr
USER root
RUN apt-get update && apt-get install -y --no-install-recommends frr frr-pythontools procps && \
    rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/app/frr/reloader-entrypoint.sh"]

# Default image. The controller runs as non-root; the speaker DaemonSet runs it as root with only
# CAP_NET_RAW (packet sockets for ARP/NDP), as the manifests set.
FROM app
USER 65532:65532
ENTRYPOINT ["/app/bin/ironlb"]
