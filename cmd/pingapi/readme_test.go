package main

import (
	"testing"

	"github.com/hostkit/hostkit/internal/host/hosttest"
)

// TestREADMEConfigTable keeps the README's table of pingapi's keys in step
// with the keys pingapi declares.
func TestREADMEConfigTable(t *testing.T) {
	hosttest.Section(t, "../../README.md", "pingapi config", hosttest.ConfigTable(program()))
}
