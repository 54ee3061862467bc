package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// gate is a sink whose writes wait until it is opened.
type gate struct {
	open   chan struct{}
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func TestAsyncWriterLosesNoLineAtClose(t *testing.T) {
	sink := &gate{open: make(chan struct{})}
	close(sink.open)
	w := host.NewAsyncWriter(sink, 1024)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range lines {
				fmt.Fprintf(w, "w%d line %d\n", i, j)
			}
		})
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "after close\n")
	got := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	if len(got) != writers*lines+1 {
		t.Fatalf("%d lines written out, want %d", len(got), writers*lines+1)
	}
	next := make([]int, writers)
	for _, l := range got[:len(got)-1] {
		var i, j int
		if _, err := fmt.Sscanf(l, "w%d line %d", &i, &j); err != nil || j != next[i] {
			t.Fatalf("line %q out of order or torn (want w%d line %d)", l, i, next[i])
		}
		next[i]++
	}
	if got[len(got)-1] != "after close" {
		t.Errorf("last line = %q, want the one written after Close", got[len(got)-1])
	}
	if sink.writes >= writers*lines {
		t.Errorf("%d writes for %d lines: no batching", sink.writes, writers*lines)
	}
}

func TestAsyncWriterBlocksWhenFullInsteadOfDropping(t *testing.T) {
	sink := &gate{open: make(chan struct{})}
	w := host.NewAsyncWriter(sink, 64)
	line := []byte(strings.Repeat("x", 31) + "\n") // 32 bytes
	// The flusher takes the first line and waits in the sink; two more
	// fill the buffer; the fourth must wait.
	for range 3 {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	wrote := make(chan struct{})
	go func() {
		_, _ = w.Write(line)
		_, _ = w.Write(line)
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("writes past the buffer's bound returned while the sink was stuck")
	case <-time.After(50 * time.Millisecond):
	}
	close(sink.open)
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("writes did not resume once the sink drained")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := len(sink.String()), 5*len(line); got != want {
		t.Errorf("%d bytes written out, want %d", got, want)
	}
}

func TestAsyncWriterCloseIsBounded(t *testing.T) {
	sink := &gate{open: make(chan struct{})} // never opens
	w := host.NewAsyncWriter(sink, 0)
	_, _ = w.Write([]byte("stuck\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close on a stuck sink = %v, want the deadline's error", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Close took %s past its deadline", took)
	}
	close(sink.open)
}
