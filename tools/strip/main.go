// Command strip removes hostkit's example app from a copy of the template,
// leaving the kit: the host, the HTTP plumbing, the worker's engine, queue
// and change-feed machinery, the deploy files, and binaries that start,
// report ready and serve health and metrics.
//
//	go run ./tools/strip [DIR]    (make strip-example)
//
// What is the example is marked, so the tool knows it without a list:
//
//   - the directory internal/example/;
//   - files named *_example.go and *_example_test.go, anywhere;
//   - blocks of lines between a comment line "example:begin" and one
//     "example:end" (// in Go, # in the Makefile and YAML), whose lines go
//     too, markers included.
//
// Imports a Go file no longer uses after that are dropped, and the README's
// generated config tables are refreshed from the binaries (go test -update
// in the packages that check them). Running it twice changes nothing.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	dir := "."
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: strip [DIR]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		dir = os.Args[1]
	}
	if err := run(dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "strip:", err)
		os.Exit(1)
	}
}

func run(dir string, out io.Writer) error {
	if _, err := os.Stat(dir + "/go.mod"); err != nil {
		return fmt.Errorf("%s is not a module root: %w", dir, err)
	}
	s := &stripper{dir: dir, out: out}
	if err := s.tree(); err != nil {
		return err
	}
	return s.refreshDocs()
}
