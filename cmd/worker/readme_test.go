package main

import (
	"testing"

	"github.com/hostkit/hostkit/internal/host/hosttest"
)

// TestREADMEConfigTable keeps the README's table of worker's keys in step
// with the keys worker declares.
func TestREADMEConfigTable(t *testing.T) {
	hosttest.Section(t, "../../README.md", "worker config", hosttest.ConfigTable(program()))
}
