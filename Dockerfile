# One image for the three services (and the migrations job); docker-compose picks the entry point.
# syntax=docker/dockerfile:1

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: tsx runs the TypeScript sources directly (no build output to drift).
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS check
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json eslint.config.mjs ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
COPY scripts ./scripts
COPY infra ./infra
COPY test ./test
COPY bench ./bench
# The image is only built from sources that type-check.
RUN npx tsc --noEmit -p .

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY --from=check /app/shared ./shared
COPY --from=check /app/services ./services
COPY --from=check /app/migrations ./migrations
COPY --from=check /app/scripts/migrate.ts ./scripts/migrate.ts
USER node
EXPOSE 3000 3001 3002
# docker-compose sets the command per service, e.g. services/relay/src/main.ts
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/accounts/src/main.ts"]
