// Package deploy holds what runs hostkit outside `go run`: the Kubernetes
// manifests (manifests/base and overlays/kind), the kind cluster and its
// Contour ingress (kind/), and the files the container images are made of
// (image/). It has no code; its tests check those files against each other,
// against the Makefile and Dockerfile, and against the real binaries:
//
//   - manifests_test.go builds the kind overlay with kustomize in-process,
//     decodes every object strictly into the Kubernetes API types, and checks
//     the shutdown budget, probes, ports, security context and rollout rules;
//   - binaries_test.go starts the real pingapi and worker with the manifests'
//     environment and GETs every probe path the manifests name;
//   - kind_test.go checks the kind cluster and the Contour patch;
//   - makefile_test.go runs make (dry runs, help, manifests rendering).
//
// This directory is a Go module of its own (go.mod here), so that the
// Kubernetes, kustomize and kind libraries these tests and `make kind-up`
// need stay out of the services' go.mod. tools/render prints a rendered
// kustomization as JSON for tests outside this module. The container image
// tests run the services and live in the root module (internal/imagetest).
package deploy
