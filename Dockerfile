# syntax=docker/dockerfile:1
# Parley as a container: a static binary (templ output, CSS and htmx are
# committed and embedded, so no Node stage) on distroless, as a non-root
# user. Build: docker build --build-arg VERSION=$(git describe --always) -t parley .

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/parley ./cmd/parley

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/parley /parley
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/parley"]
CMD ["serve"]
