//go:build unix && !linux

package faults_test

import "os/exec"

// noOrphans does nothing where the kernel offers no parent-death signal;
// the test's cleanups still kill every process it started.
func noOrphans(*exec.Cmd) {}
