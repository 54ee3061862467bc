package main

import (
	"time"

	"github.com/hostkit/hostkit/internal/example/jobs"
	"github.com/hostkit/hostkit/internal/host"
)

// exampleConfig holds the example job handlers' keys.
type exampleConfig struct {
	PingMaxWork time.Duration
}

func (e *exampleConfig) declare(c *host.Config) {
	c.Duration(&e.PingMaxWork, "jobs.ping.max_work", jobs.DefaultMaxWork,
		"longest work a jobs.ping job may ask for; longer requests are cut to it")
	c.Check(func() error {
		if e.PingMaxWork <= 0 {
			return c.Invalid("jobs.ping.max_work", "must be positive")
		}
		return nil
	})
}
