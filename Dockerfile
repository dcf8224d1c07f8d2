# The edlake worker image: runs `edlake worker` against a Temporal cluster and an S3 lake.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
USER node
ENV EDLAKE_HOME=/tmp/edlake
ENTRYPOINT ["node", "bin/edlake.js"]
CMD ["worker"]
