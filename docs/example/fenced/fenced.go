// Package fenced is the fenced sink of docs/extending.md, kept here so that
// tests compile and run it: a store that refuses the writes of a change-feed
// replica that has lost its partition's lease. Nothing imports it.
package fenced

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hostkit/hostkit/internal/changefeed"
)

// ErrStale is returned for a change handled under a lease that a later
// owner has since taken over.
var ErrStale = errors.New("stale fencing token: the partition has a newer owner")

// Store keeps the latest value of each key, and per partition the highest
// fencing token it has accepted.
type Store struct {
	mu     sync.Mutex
	values map[string][]byte
	tokens map[int]uint64
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{values: map[string][]byte{}, tokens: map[int]uint64{}}
}

// Apply writes c unless a newer owner of its partition has written before.
// The check and the write are one step, as they must be in a database.
func (s *Store) Apply(c changefeed.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.FencingToken < s.tokens[c.Partition] {
		return fmt.Errorf("change %d of %s: %w", c.Seq, c.Key, ErrStale)
	}
	s.tokens[c.Partition] = c.FencingToken
	s.values[c.Key] = c.Data
	return nil
}

// Value returns the latest value of key.
func (s *Store) Value(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}
