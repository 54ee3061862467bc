package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// LoadOptions describe a load run.
type LoadOptions struct {
	URL    string
	Method string // GET (default) or POST
	Body   []byte // sent with every request, as JSON, when not empty
	// WantBody, if set, is the exact body a successful response must have.
	WantBody string
	// Rate is the target number of requests per second (default 50).
	Rate int
	// Duration bounds the run; 0 means until ctx is done.
	Duration time.Duration
	// MaxRequests bounds the run by count; 0 means no bound but Duration and ctx.
	MaxRequests int
	// Concurrency caps requests in flight (default 64). When every slot is
	// taken the generator waits, so a stalled server slows the load instead
	// of piling up goroutines.
	Concurrency int
	// Timeout bounds each request (default 30s).
	Timeout time.Duration
	// Client sends the requests; nil means a client with a keep-alive pool
	// sized for Concurrency.
	Client *http.Client
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.Concurrency
		o.Client = &http.Client{Transport: t}
	}
	return o
}

// Load sends requests at a steady rate until Duration passes, MaxRequests
// are sent, or ctx is done, then waits for the requests in flight and
// reports. Requests in flight are not cancelled by ctx: stopping the load
// means sending no more, not failing what was already sent.
func Load(ctx context.Context, opts LoadOptions) (Report, error) {
	opts = opts.withDefaults()
	if _, err := url.ParseRequestURI(opts.URL); err != nil {
		return Report{}, fmt.Errorf("load: url: %w", err)
	}
	if opts.Method != http.MethodGet && opts.Method != http.MethodPost {
		return Report{}, fmt.Errorf("load: method %q: want GET or POST", opts.Method)
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}

	var rec recorder
	slots := make(chan struct{}, opts.Concurrency)
	tick := time.NewTicker(time.Second / time.Duration(opts.Rate))
	defer tick.Stop()
	began := time.Now()
	for sent := 0; opts.MaxRequests == 0 || sent < opts.MaxRequests; sent++ {
		select {
		case <-ctx.Done():
			return finish(slots, &rec, began), nil
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return finish(slots, &rec, began), nil
		case slots <- struct{}{}:
		}
		go func() {
			defer func() { <-slots }()
			start := time.Now()
			failure := send(opts)
			rec.record(time.Since(start), failure)
		}()
	}
	return finish(slots, &rec, began), nil
}

// finish waits for every request in flight by taking every slot.
func finish(slots chan struct{}, rec *recorder, began time.Time) Report {
	for range cap(slots) {
		slots <- struct{}{}
	}
	return rec.report(time.Since(began))
}

// send makes one request and returns why it failed, or "".
func send(opts LoadOptions) string {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	var body io.Reader
	if len(opts.Body) > 0 {
		body = bytes.NewReader(opts.Body)
	}
	req, err := http.NewRequestWithContext(ctx, opts.Method, opts.URL, body)
	if err != nil {
		return err.Error()
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := opts.Client.Do(req)
	if err != nil {
		return reason(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "reading body: " + reason(err)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Sprintf("status %d", resp.StatusCode)
	case opts.WantBody != "" && string(got) != opts.WantBody:
		return fmt.Sprintf("body %.40q, want %q", got, opts.WantBody)
	}
	return ""
}

// reason names a transport error without the URL and ports that would make
// every failure a different reason.
func reason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the response"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
