package host

import (
	"context"
	"io"
	"sync"
	"time"
)

// DefaultLogBuffer is the most log output an AsyncWriter holds before a
// writer waits for the flusher: a few thousand access log lines.
const DefaultLogBuffer = 256 << 10

// AsyncWriter takes log output off the request path: Write copies into a
// buffer and returns, and one goroutine writes the buffer out, many lines
// per system call. Nothing is dropped: when the buffer is full, Write waits
// for the flusher, so memory stays bounded and a slow log sink slows the
// writers down rather than losing lines. Close writes out what is left.
// Lines still buffered when the process dies without Close are lost, as
// with any user-space buffer; a graceful stop loses none.
type AsyncWriter struct {
	w      io.Writer
	max    int
	linger time.Duration

	mu       sync.Mutex
	wake     sync.Cond // the flusher waits for data or close
	room     sync.Cond // writers wait for the flusher to take the buffer
	buf      []byte
	flushing bool
	closed   bool
	err      error // the first write error, returned by Close
	done     chan struct{}
}

// logLinger is how long the flusher lets lines gather before a write: long
// enough to batch a busy server's lines, short enough to watch logs live.
const logLinger = 2 * time.Millisecond

// NewAsyncWriter returns a writer that buffers up to max bytes (0 means
// DefaultLogBuffer) for w and starts its flusher.
func NewAsyncWriter(w io.Writer, max int) *AsyncWriter {
	if max <= 0 {
		max = DefaultLogBuffer
	}
	a := &AsyncWriter{w: w, max: max, linger: logLinger, buf: make([]byte, 0, 4096), done: make(chan struct{})}
	a.wake.L, a.room.L = &a.mu, &a.mu
	go a.flushLoop()
	return a
}

// Write buffers a copy of p. It waits while the buffer holds max bytes
// already. After Close it writes p through, so late lines are not lost.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	for !a.closed && len(a.buf) > 0 && len(a.buf)+len(p) > a.max {
		a.room.Wait()
	}
	if a.closed {
		// After what was buffered, not interleaved with it.
		a.mu.Unlock()
		<-a.done
		return a.w.Write(p)
	}
	a.buf = append(a.buf, p...)
	if !a.flushing {
		a.wake.Signal()
	}
	a.mu.Unlock()
	return len(p), nil
}

func (a *AsyncWriter) flushLoop() {
	defer close(a.done)
	spare := make([]byte, 0, 4096)
	a.mu.Lock()
	for {
		for len(a.buf) == 0 && !a.closed {
			a.wake.Wait()
		}
		if len(a.buf) == 0 { // closed and empty
			a.mu.Unlock()
			return
		}
		if !a.closed && len(a.buf) < a.max/2 {
			// Let more lines gather: under load, many per system call.
			a.mu.Unlock()
			time.Sleep(a.linger)
			a.mu.Lock()
		}
		out := a.buf
		a.buf, a.flushing = spare[:0], true
		a.room.Broadcast()
		a.mu.Unlock()

		_, err := a.w.Write(out)

		a.mu.Lock()
		a.flushing = false
		if err != nil && a.err == nil {
			a.err = err
		}
		// Keep the larger buffer, but do not hold on to a huge one.
		if cap(out) <= 4*a.max {
			spare = out
		}
	}
}

// Close writes out everything buffered and stops the flusher, waiting no
// longer than ctx allows. Writes after Close go straight to the underlying
// writer. It returns the first error writing out met.
func (a *AsyncWriter) Close(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	a.wake.Signal()
	a.room.Broadcast()
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
