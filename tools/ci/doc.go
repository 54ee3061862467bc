// Package ci checks the project's CI definitions; it has no code. The hosted
// workflow (.github/workflows/ci.yml) is linted with actionlint, which
// .ci/run installs, and every place that names the Go release (go.mod's
// toolchain line, the Makefile, .ci/run, the workflow, the Dockerfile) must
// name the same one.
package ci
