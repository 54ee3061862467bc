package ping

import (
	"log/slog"
	"time"

	"github.com/go-chi/chi/v5"
)

// Options is what the ping routes need.
type Options struct {
	// MaxDelay bounds ?delay= and a job's work (ping.max_delay); 0 means DefaultMaxDelay.
	MaxDelay time.Duration
	// Publisher receives jobs; nil makes POST /pingpong/jobs answer 503.
	Publisher Publisher
	// Logger receives publish failures. Nil discards them.
	Logger *slog.Logger
}

// AddRoutes adds the ping API to r. This is the whole API surface.
func AddRoutes(r chi.Router, opts Options) {
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r.Get("/pingpong/ping", handlePing(opts.MaxDelay))
	r.Post("/pingpong/jobs", handleJobs(opts.Publisher, opts.MaxDelay, opts.Logger))
}
