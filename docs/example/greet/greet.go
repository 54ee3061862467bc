package greet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/hostkit/hostkit/internal/queue"
)

// maxGreetName bounds a name, so that a bad publisher cannot fill the logs.
const maxGreetName = 100

// GreetJob is the payload of a jobs.greet message: {"name": "Ada"}.
type GreetJob struct {
	// Name is who to greet: 1 to 100 characters.
	Name string `json:"name"`
}

// Greet returns the handler of jobs.greet, which greets Name in log. Input
// that can never work is a permanent error: the job goes to the DLQ at once
// instead of being retried. Unknown fields are ignored, so a publisher can
// add one before every worker knows it.
func Greet(log *slog.Logger) queue.Handler {
	return func(ctx context.Context, msg queue.Message) error {
		var job GreetJob
		if err := json.Unmarshal(msg.Data, &job); err != nil {
			return queue.Permanent(fmt.Errorf("jobs.greet: malformed JSON: %w", err))
		}
		name := strings.TrimSpace(job.Name)
		if n := utf8.RuneCountInString(name); n == 0 || n > maxGreetName {
			return queue.Permanent(fmt.Errorf("jobs.greet: name has %d characters, want 1 to %d", n, maxGreetName))
		}
		// Hand ctx to everything that can block (a database, an HTTP call):
		// it is cancelled when a shutdown stops waiting for this job.
		log.InfoContext(ctx, "hello", "name", name, "attempt", msg.Attempt)
		return nil
	}
}
