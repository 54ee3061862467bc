package queue

// RefillBelow exposes the pull threshold to the benchmark, which consumes
// through the same iterator settings without the processor.
func (c Config) RefillBelow() int { return c.refillBelow() }
