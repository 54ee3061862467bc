// Package imagetest checks the container images the Dockerfile builds, for
// every binary under cmd/. It has no code, only tests, which live in the root
// module because they build and run the services (testcontainers-go, the
// services' own packages) rather than check deploy files:
//
//   - dockerfile_test.go checks the Dockerfile's stage order and that
//     .dockerignore sends exactly the build inputs;
//   - container_test.go builds the images (target local, from binaries built
//     here) and checks that the containers stop gracefully on SIGTERM and
//     keep their jobs across a restart.
//
// The tests that check the Kubernetes manifests and the kind cluster live in
// the nested module under deploy/, so the services do not depend on
// Kubernetes libraries.
package imagetest
