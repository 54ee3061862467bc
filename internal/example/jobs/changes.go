package jobs

import (
	"context"
	"log/slog"

	"github.com/hostkit/hostkit/internal/changefeed"
)

// LogChanges returns the example change handler: it logs every change it is
// given, with the fencing token of the lease it was handled under. Replace
// it with what a service does with its changes, such as updating a read
// model; keep it idempotent, as a change can come twice, and pass
// c.FencingToken to the sink so that it can refuse a stale owner's writes
// (docs/extending.md).
func LogChanges(log *slog.Logger) changefeed.Handler {
	return func(ctx context.Context, c changefeed.Change) error {
		log.InfoContext(ctx, "change", "key", c.Key, "partition", c.Partition, "seq", c.Seq,
			"fencing_token", c.FencingToken, "bytes", len(c.Data))
		return nil
	}
}
