// Package docs holds the guides and the tests that keep them honest; it has
// no code. For extending.md, an HTML comment before a fenced block says what
// the block is:
//
//   - <!-- excerpt: FILE -->: Go that appears byte for byte in FILE, an
//     example under docs/example that a step copies;
//   - <!-- file: PATH --> and <!-- edit: PATH -->: a new Go file, or lines
//     that go around the one line of the block the file already has;
//   - <!-- step -->: a shell step.
//
// docs_test.go parses the guide, requires a marker on every Go block, and
// checks the excerpts, gofmt and the make targets the commands name.
// follow_test.go follows the guide in a copy of the repository: it runs the
// steps and writes the files and edits in order, builds the binaries they
// touch, renders the manifests (deploy/tools/render, in the deploy module),
// starts the worker, publishes the guide's jobs, starts the new binary with
// its Deployment's environment, probes it, waits for its beats in the
// worker's log, stops both with SIGTERM, and runs the extended copy's fast
// tests in both modules.
//
// The examples under docs/example are compiled and tested but wired into no
// binary: they are the code a reader copies.
package docs
