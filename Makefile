# The project's vocabulary. `make run` and `make test` are the two commands
# the README promises work on a fresh machine.
GO ?= go
FUZZTIME ?= 60s
# Fuzz targets as package:Func; `make test` runs each for FUZZTIME_SHORT.
FUZZ_TARGETS := ./internal/phone:FuzzNormalize ./internal/crypt:FuzzDecrypt
# A count of inputs, not a duration: when a duration runs out while the
# fuzzer minimises a new input, go test reports "context deadline
# exceeded" and fails (seen in CI); a count ends between inputs. 100000
# inputs take a few seconds each here.
FUZZTIME_SHORT ?= 100000x
# Tests run under the race detector wherever a C compiler is there for it
# (CI installs one); without one they run all the same, unchecked for races.
RACE ?= $(shell command -v gcc >/dev/null 2>&1 && echo -race)

.PHONY: run build test bench fuzz generate css lint migrate check-generated deps

## run: Parley for development (embedded PostgreSQL in ./.data unless DATABASE_URL is set)
# The binary is built, then run in the recipe's place: `go run` answers
# Ctrl-C with exit status 1 although Parley stops cleanly, and make then
# reports an error.
run: build
	@exec bin/parley dev

## build: the binary in bin/parley
build:
	$(GO) build -o bin/parley ./cmd/parley

## test: lint, generated-file check and every test against real PostgreSQL
test: lint check-generated
	$(GO) test $(RACE) -count=1 ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

## bench: the benchmarks (long; not part of test)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 60m ./...

## fuzz: each fuzz target for FUZZTIME
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

## generate: templ components to Go
generate:
	$(GO) tool templ generate -path . -log-level error

## css: Tailwind CSS and the htmx copies (htmx, its SSE extension) in static/;
## axe-core for the browser tests' accessibility checks in static/vendor/ (not embedded: tests only)
css: node_modules/.installed
	npx --no-install tailwindcss -c tailwind.config.js -i static/src/app.css -o static/app.css --minify
	cp node_modules/htmx.org/dist/htmx.min.js static/htmx.min.js
	cp node_modules/htmx-ext-sse/dist/sse.min.js static/htmx-ext-sse.min.js
	mkdir -p static/vendor/axe-core
	cp node_modules/axe-core/axe.min.js node_modules/axe-core/LICENSE static/vendor/axe-core/

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## lint: go vet, gofmt and templ fmt
lint:
	$(GO) vet ./...
	@bad=$$(gofmt -l $$(find . -name '*.go' -not -path './node_modules/*' -not -name '*_templ.go')); \
	  if [ -n "$$bad" ]; then echo "gofmt would change:"; echo "$$bad"; exit 1; fi

## check-generated: fails when templ output, CSS or htmx are stale
check-generated: node_modules/.installed
	scripts/check-generated

## migrate: apply migrations to DATABASE_URL, or to the running `make run`'s database (ARGS=down|status for the others)
migrate:
	@if [ -z "$$DATABASE_URL" ] && [ -f .data/dev-database.env ]; then set -a; . ./.data/dev-database.env; set +a; fi; \
	$(GO) run ./cmd/parley migrate $(or $(ARGS),up)
