//go:build linux

package faults_test

import (
	"os/exec"
	"syscall"
)

// noOrphans makes the kernel kill cmd if the test binary dies without
// running its cleanups (go test's timeout, an interrupt), so no server or
// worker outlives it holding ports.
func noOrphans(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
