# ironlb image: controller, speaker and CLI in one Node.js image.
# Stage 1 builds the TypeScript; stage 2 carries only runtime files and production modules.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY templates ./templates
COPY deploy/crds ./deploy/crds
COPY frr ./frr
# The speaker needs CAP_NET_RAW (and hostNetwork); the controller needs nothing special.
USER 65532:65532
ENTRYPOINT ["/app/bin/ironlb"]
