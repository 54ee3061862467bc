// Package deploy holds what runs hostkit outside `go run`: the Kubernetes
// manifests (manifests/base and the overlays), the kind cluster and its
// Envoy Gateway settings (kind/), and the files the container images are
// made of (image/). It has no code; its tests check those files against each other,
// against the Makefile and Dockerfile, and against the real binaries:
//
//   - manifests_test.go builds the kind overlay with kustomize in-process,
//     decodes every object strictly into the Kubernetes API types, and checks
//     the shutdown budget, probes, ports, security context and rollout rules;
//   - binaries_test.go starts the real pingapi and worker with the manifests'
//     environment and GETs every probe path the manifests name;
//   - kind_test.go checks the kind cluster and the Envoy Gateway settings;
//   - matrix_test.go checks the pins against README.md's version matrix;
//   - networkpolicy_test.go computes the allowed flows with cyclonus;
//   - nats_auth_test.go checks the NATS users against a real server;
//   - images_test.go, autoscaling_test.go, sbom_test.go: image pins, the
//     KEDA/HPA overlay, the CycloneDX SBOMs;
//   - makefile_test.go runs make (dry runs, help, manifests rendering).
//
// This directory is a Go module of its own (go.mod here), so that the
// Kubernetes, kustomize and kind libraries these tests and `make kind-up`
// need stay out of the services' go.mod. tools/render prints a rendered
// kustomization as JSON for tests outside this module. The container image
// tests run the services and live in the root module (internal/imagetest).
package deploy
