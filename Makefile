# hostkit developer entry points. `make help` lists every target.
#
# Nothing here needs an executable bit (scripts run as `bash FILE`) or knows
# the module path (ask `go list -m`), so the tree still works after gonew
# copies it under another name.

# help, build, test, run and clean work with GNU make 3.81 and bash 3.2 (a
# stock macOS): one command per line, nothing newer. The other targets'
# recipes are scripts of several lines, which need make 3.82's .ONESHELL;
# they start with $(NEEDS_ONESHELL), which stops an older make with a hint.
ifeq ($(filter oneshell,$(.FEATURES)),)
NEEDS_ONESHELL = $(error this target needs GNU make 3.82 or newer (on macOS: brew install make, then run gmake))
endif
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# Each recipe runs as one script: variables and traps live across its lines.
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# The Go release every build, test and image uses (go.mod's toolchain line;
# the go command fetches it through the module proxy on first use). A
# machine's own Go may be older and have known vulnerabilities.
export GOTOOLCHAIN := go1.27.3

# Every directory under cmd/ is a service with an image of its own; tools
# live under tools/. A new service needs no change here.
APPS ?= $(sort $(notdir $(patsubst %/,%,$(wildcard cmd/*/))))
# Every binary listens on its own HTTP port: its http.addr default, declared
# once in cmd/APP (cfg.HTTP.Declare(c, ":8080", ...), or a "http.addr" key
# with a default); the image EXPOSEs it, the Deployment names it.
port = $(shell sed -n -e 's/.*"http\.addr", *"[^"]*:\([0-9][0-9]*\)".*/\1/p' -e 's/.*HTTP\.Declare.c, *"[^"]*:\([0-9][0-9]*\)".*/\1/p' cmd/$(1)/*.go | head -n 1)

# The project's one name: the images' repository (hostkit/pingapi), the kind
# cluster and the namespace. make rename sets it, in the manifests too, to
# the new module's last path element.
PROJECT ?= hostkit
IMAGE_REPO ?= $(PROJECT)
IMAGES = $(addprefix $(IMAGE_REPO)/,$(APPS))
# Empty builds the Dockerfile's default target (golang builder, distroless
# runtime); `local` packages binaries built here into scratch, for machines
# without registry access.
IMAGE_TARGET ?=
# The tag is computed once per make run, and only when a target needs it:
# the commit, or commit-dirty-HASH for a changed tree (deploy/image/tag.sh).
TAG ?= $(eval TAG := $$(shell bash deploy/image/tag.sh))$(TAG)
REVISION = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The image's source label, from the module path (github.com/OWNER/REPO).
SOURCE = https://$(shell go list -m)
LDFLAGS = -s -w -X main.version=$(TAG)

KIND_CLUSTER ?= $(PROJECT)
# kind at the version in deploy/go.mod (a `tool` there, so the services'
# go.mod does not carry it), the one whose node image deploy/kind/cluster.yaml
# pins; set KIND=kind to use an installed one. It runs in deploy/, so the
# paths given to it are absolute.
KIND ?= go -C deploy tool kind
KUBECTL := kubectl --context kind-$(KIND_CLUSTER)
NAMESPACE := $(PROJECT)
# The Gateway API implementation and the CRD bundle it ships: deploy/README.md
# ("Version matrix") says why these, with sources; a test checks both
# against that table and against deploy/go.mod.
ENVOY_GATEWAY_VERSION := v1.9.1
GATEWAY_API_VERSION := v1.6.1
ENVOY_GATEWAY_MANIFEST := https://github.com/envoyproxy/gateway/releases/download/$(ENVOY_GATEWAY_VERSION)/install.yaml
# The NATS image is nats-server at the version go.mod requires, under a
# localhost/ name: it exists only where make built or kind loaded it, and
# a pull of it could never reach Docker Hub.
NATS_IMAGE := localhost/nats-server
NATS_VERSION = $(shell go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
# Where `make manifests` renders the overlay that carries the image tags.
DEPLOY_DIR ?= bin/deploy
# The overlay under deploy/ that make deploy applies; observability/kind adds
# an OpenTelemetry Collector and Jaeger (README: Observability).
OVERLAY ?= manifests/overlays/kind
INGRESS_URL ?= http://localhost:8081
# rollout-check: the load runs until the rollout is done plus this many
# seconds, so the last old pod's shutdown delay and drain are under load too.
ROLLOUT_DRAIN_SECONDS ?= 10

APP ?= pingapi
# Extra flags for make run, e.g. WORKER_FLAGS=--queue.concurrency=8 (the two
# services share the environment, so a flag is the way to set one of them).
WORKER_FLAGS ?=
PINGAPI_FLAGS ?=
# Flags for tools/devrun, which make run is: e.g. DEVRUN_FLAGS=-report=FILE.
DEVRUN_FLAGS ?=
# Where make run's embedded NATS listens and pingapi publishes.
NATS_ADDR ?= 127.0.0.1:4222
REPLICAS ?=
# make bench-http: extra benchhttp flags (-rounds 9 -duration 3s), and a git
# ref whose pingapi to compare with (BENCH_BASE=main: this build vs that one).
BENCH_FLAGS ?=
BENCH_BASE ?=

STATICCHECK_VERSION := v0.8.2
CYCLONEDX_GOMOD_VERSION := v1.10.0
# Where make sbom writes APP.cdx.json.
SBOM_DIR ?= bin/sbom
GOVULNCHECK_VERSION := v1.9.0
ACTIONLINT_VERSION := v1.7.12
# make vuln: the online database, else one built here from golang.org/x/vulndb
# at this pseudo-version (the OSV records, served by the Go module proxy).
VULN_DB ?= https://vuln.go.dev
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
# The whole suite, container and manifest tests included; CI runs `make test`.
TEST_TIMEOUT ?= 9m

# testcontainers-go: no reaper container (it would need a registry pull) and
# containers reached through localhost.
export TESTCONTAINERS_RYUK_DISABLED := true
export TESTCONTAINERS_HOST_OVERRIDE := localhost

##@ Develop

.PHONY: help
help: ## List the targets with a one-line description
	@awk 'BEGIN { FS = ":.*## " } /^##@/ { printf "\n%s\n", substr($$0, 5) } /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST); \
	echo; echo "Variables: TAG=$(TAG) KIND_CLUSTER=$(KIND_CLUSTER) APP=$(APP) IMAGE_TARGET=$(IMAGE_TARGET)"

.PHONY: build
build: ## Build every command under cmd/ into bin/
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: test
test: ## Run every test once (go test ./...), container and manifest tests included, and the host's with -race
	go test -count=1 -timeout $(TEST_TIMEOUT) ./...
	# The deploy files' tests are a module of their own (deploy/go.mod).
	go -C deploy test -count=1 -timeout $(TEST_TIMEOUT) ./...
	go test -race -count=1 -timeout $(TEST_TIMEOUT) ./internal/host/...

# example:begin
# The fault suite loads the system through the example's endpoint and
# change handler, so it goes with the example.
.PHONY: test-faults
test-faults: ## Run the fault suite: 3-node JetStream cluster, workers and pingapi under injected faults (~2 min); logs in bin/faults-logs
	HOSTKIT_FAULTS=1 HOSTKIT_FAULTS_LOGS=$(CURDIR)/bin/faults-logs \
	  go test -count=1 -timeout 15m -run TestFaults -v ./test/faults/
# example:end

.PHONY: test-race
test-race: ## Run the internal packages' tests with the race detector
	go test -race -count=1 -timeout $(TEST_TIMEOUT) ./internal/...

.PHONY: lint
lint: ## gofmt, go vet (both modules) and staticcheck (pinned, fetched by go run)
	$(NEEDS_ONESHELL)
	unformatted=$$(gofmt -l $$(go list -f '{{.Dir}}' ./...))
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go -C deploy vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd deploy && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: vuln
vuln: ## govulncheck the binaries' code; offline, against a database built from golang.org/x/vulndb
	$(NEEDS_ONESHELL)
	@# govulncheck exits 3 for vulnerabilities found, 1 when it failed, such
	@# as an unreachable database: only then is the local database used.
	status=0
	go run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db $(VULN_DB) ./... || status=$$?
	if [ $$status -ne 1 ]; then exit $$status; fi
	echo "$(VULN_DB) unreachable: building a local database from golang.org/x/vulndb@$(VULNDB_VERSION)"
	go mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	osv=$$(go list -m -f '{{.Dir}}' golang.org/x/vulndb@$(VULNDB_VERSION))/data/osv
	rm -rf bin/vulndb
	go run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$osv" -out bin/vulndb
	go run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(CURDIR)/bin/vulndb ./...

.PHONY: run
run: ## Run worker (embedded NATS on NATS_ADDR, 127.0.0.1:4222) and pingapi (:8080); Ctrl-C stops both
	@go build -o bin/dev/ ./cmd/worker ./cmd/pingapi ./tools/devrun
	@# tools/devrun starts pingapi once NATS listens, prefixes the logs and
	@# stops both together (its doc says how signals travel).
	@exec bin/dev/devrun -wait $(NATS_ADDR) $(DEVRUN_FLAGS) \
	  "bin/dev/worker --nats.embedded.addr=$(NATS_ADDR) $(WORKER_FLAGS)" \
	  "bin/dev/pingapi --nats.url=nats://$(NATS_ADDR) $(PINGAPI_FLAGS)"

.PHONY: clean
clean: ## Remove bin/ (binaries, rendered manifests) and data/ (make run's embedded NATS store)
	rm -rf bin data

.PHONY: bench-http
bench-http: ## wrk on GET /pingpong/ping: pingapi (default config, log to a file) vs bare net/http and vs bare + an access line, tracing on vs off
	command -v wrk >/dev/null || { sudo=$$(command -v sudo || true); $$sudo apt-get update -qq && $$sudo apt-get install -y -qq wrk; }
	go build -o bin/ ./cmd/pingapi ./tools/benchhttp
	base=
	if [ -n "$(BENCH_BASE)" ]; then
	  src=$$(mktemp -d); trap 'rm -rf "$$src"' EXIT
	  git archive "$(BENCH_BASE)" | tar -x -C "$$src"
	  (cd "$$src" && go build -o "$(CURDIR)/bin/pingapi-base" ./cmd/pingapi)
	  base="-base bin/pingapi-base"
	fi
	bin/benchhttp -bin bin/pingapi -path /pingpong/ping -traced $$base $(BENCH_FLAGS)

.PHONY: promtool
promtool: ## Build promtool from the Go module proxy into bin/ (for the alert rules' tests)
	bash deploy/observability/promtool.sh

.PHONY: test-rules
test-rules: promtool ## Check and unit-test the Prometheus alerting rules with promtool
	go -C deploy test -count=1 -run 'TestAlertRulesPassPromtool|TestPrometheusRule' -v .

.PHONY: rollout-sim
rollout-sim: ## Simulate a rolling update in-process and check nothing is dropped
	go test -count=1 -run TestRollout -v ./internal/rollout/

.PHONY: rollout-proxies
rollout-proxies: ## Roll pingapi behind real nginx and HAProxy under POST/GET load; print the figures
	# Needs nginx and haproxy (Debian: apt-get install nginx-light haproxy).
	# ROLLOUT_PINGAPI=path measures another pingapi build; ROLLOUT_PROXY_POSTS
	# sets the POSTs of the D > L cases (default 20000).
	go test -count=1 -timeout 10m -run TestProxyRollout -v ./internal/rollout/ 2>&1 \
	  | grep -Ev '^ +[0-9]{4}/[0-9]{2}/[0-9]{2} |^ +\[(WARNING|NOTICE|ALERT)\]'

##@ Images

.PHONY: linux-binaries
linux-binaries: ## Build static linux binaries for the local image target into bin/linux/
	$(NEEDS_ONESHELL)
	for app in $(APPS); do
	  CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux/$$app ./cmd/$$app
	done

.PHONY: image
image: $(addprefix image.,$(APPS)) ## Build an image per service under cmd/ (IMAGE_REPO/APP:TAG)

# image.APP builds one image; the Dockerfile is the same for every APP.
image.%: $(if $(filter local,$(IMAGE_TARGET)),linux-binaries)
	docker build $(if $(IMAGE_TARGET),--target $(IMAGE_TARGET)) \
	  --build-arg APP=$* --build-arg PORT=$(or $(call port,$*),$(error cmd/$* declares no http.addr default with a port)) \
	  --build-arg VERSION=$(TAG) --build-arg REVISION=$(REVISION) --build-arg SOURCE=$(SOURCE) \
	  -t $(IMAGE_REPO)/$*:$(TAG) .

.PHONY: image-nats
image-nats: ## Build the NATS image: nats-server at go.mod's version on scratch (NATS_IMAGE:VERSION)
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" -o bin/linux/nats-server github.com/nats-io/nats-server/v2
	docker build -f deploy/image/nats.Dockerfile --build-arg VERSION=$(NATS_VERSION) \
	  -t $(NATS_IMAGE):$(NATS_VERSION) .

.PHONY: sbom
sbom: linux-binaries ## Write a CycloneDX SBOM of every binary under cmd/ to SBOM_DIR/APP.cdx.json
	mkdir -p $(SBOM_DIR)
	# From the module graph linked into the binary the image ships.
	for app in $(APPS); do
	  go run github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION) bin \
	    -json -version $(TAG) -output $(SBOM_DIR)/$$app.cdx.json bin/linux/$$app
	done

##@ Kubernetes (kind)

.PHONY: kind-up
kind-up: ## Create the kind cluster if absent, install the pinned Envoy Gateway (and Gateway API CRDs)
	$(NEEDS_ONESHELL)
	if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then
	  echo "kind cluster $(KIND_CLUSTER) exists"
	else
	  $(KIND) create cluster --name $(KIND_CLUSTER) --config $(CURDIR)/deploy/kind/cluster.yaml --wait 180s
	fi
	# install.yaml carries the Gateway API CRDs, Envoy Gateway's CRDs and
	# the controller; server-side, as its CRDs are too large for annotations.
	$(KUBECTL) apply --server-side -f $(ENVOY_GATEWAY_MANIFEST)
	$(KUBECTL) -n envoy-gateway-system rollout status deployment/envoy-gateway --timeout=300s
	# Refuse to go on with another CRD bundle or controller than the pins.
	bundle=$$($(KUBECTL) get crd httproutes.gateway.networking.k8s.io \
	  -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}')
	[ "$$bundle" = $(GATEWAY_API_VERSION) ] || { echo "Gateway API CRDs are $$bundle, want $(GATEWAY_API_VERSION)" >&2; exit 1; }
	image=$$($(KUBECTL) -n envoy-gateway-system get deployment/envoy-gateway -o jsonpath='{.spec.template.spec.containers[0].image}')
	[ "$${image##*:}" = $(ENVOY_GATEWAY_VERSION) ] || { echo "Envoy Gateway runs $$image, want $(ENVOY_GATEWAY_VERSION)" >&2; exit 1; }
	$(KUBECTL) apply -f deploy/kind/envoy-gateway.yaml
	$(KUBECTL) wait --for=condition=Accepted gatewayclass/envoy-gateway --timeout=120s

.PHONY: kind-load
kind-load: image image-nats ## Load the images into kind (via an archive: works with containerd's image store)
	$(NEEDS_ONESHELL)
	mkdir -p bin
	archive=$(CURDIR)/bin/images-$(TAG).tar
	docker save -o "$$archive" $(addsuffix :$(TAG),$(IMAGES)) $(NATS_IMAGE):$(NATS_VERSION)
	$(KIND) load image-archive --name $(KIND_CLUSTER) "$$archive"
	rm -f "$$archive"

.PHONY: manifests
manifests: ## Render the kind overlay with the images tagged TAG into DEPLOY_DIR
	OVERLAY=$(OVERLAY) bash deploy/render-overlay.sh $(DEPLOY_DIR) $(TAG) $(IMAGES)

.PHONY: deploy
deploy: kind-load manifests ## Build, load and apply everything at TAG; wait for the rollouts
	$(NEEDS_ONESHELL)
	$(KUBECTL) apply -k $(DEPLOY_DIR)
	$(KUBECTL) -n $(NAMESPACE) rollout status statefulset/nats --timeout=300s
	for app in $(APPS); do
	  $(KUBECTL) -n $(NAMESPACE) rollout status deployment/$$app --timeout=300s
	done
	$(KUBECTL) -n $(NAMESPACE) wait --for=condition=Programmed gateway/hostkit --timeout=300s

.PHONY: scale
scale: ## Scale a deployment: make scale APP=worker REPLICAS=3
	$(if $(REPLICAS),,$(error set REPLICAS, e.g. make scale APP=worker REPLICAS=3))
	$(KUBECTL) -n $(NAMESPACE) scale deployment/$(APP) --replicas=$(REPLICAS)
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/$(APP) --timeout=300s

.PHONY: rollout-check
rollout-check: ## Load /pingpong (GET and POST) through the gateway while pingapi rolls; fails on any failed request
	$(NEEDS_ONESHELL)
	go build -o bin/rolloutcheck ./tools/rolloutcheck
	# Two loads, each until stopped: the slow-path ping and job publishing.
	bin/rolloutcheck -url $(INGRESS_URL)/pingpong/ping -want-body Pong >bin/rollout-get.txt & get=$$!
	bin/rolloutcheck -url $(INGRESS_URL)/pingpong/jobs -method POST -body '{"work":"10ms"}' >bin/rollout-post.txt & post=$$!
	trap 'kill -TERM $$get $$post 2>/dev/null || true' EXIT
	sleep 3
	$(KUBECTL) -n $(NAMESPACE) rollout restart deployment/pingapi
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/pingapi --timeout=300s
	sleep $(ROLLOUT_DRAIN_SECONDS)
	# Stopped, each prints its counts and percentiles; either one's failed
	# request fails the target.
	kill -TERM $$get $$post 2>/dev/null || true
	status=0
	wait $$get || status=1
	echo "GET $(INGRESS_URL)/pingpong/ping:"; cat bin/rollout-get.txt
	wait $$post || status=1
	echo "POST $(INGRESS_URL)/pingpong/jobs:"; cat bin/rollout-post.txt
	exit $$status

.PHONY: logs
logs: ## Follow the logs of APP (default pingapi) across its pods
	$(KUBECTL) -n $(NAMESPACE) logs -f --prefix --all-containers --max-log-requests=10 \
	  -l app.kubernetes.io/name=$(APP)

.PHONY: undeploy
undeploy: manifests ## Delete everything deploy created, NATS volumes and credentials included
	$(KUBECTL) delete -k $(DEPLOY_DIR) --ignore-not-found --wait

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

##@ Template

.PHONY: rename
rename: ## Give a clone its own module path and name (PROJECT): make rename MODULE=example.com/you/svc [NAME=svc]
	$(if $(MODULE),,$(error set MODULE, e.g. make rename MODULE=example.com/you/svc))
	go run ./tools/rename $(MODULE) $(NAME)

.PHONY: strip-example
strip-example: ## Remove the example app (internal/example, *_example*.go, example:begin/end blocks)
	go run ./tools/strip
