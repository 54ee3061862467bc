package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/example/jobs"
)

func TestLogChangesLogsTheChange(t *testing.T) {
	var buf bytes.Buffer
	h := jobs.LogChanges(slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := h(context.Background(), changefeed.Change{Key: "order-7", Partition: 3, Seq: 42, Data: []byte("{}"), FencingToken: 9}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"change"`, `"key":"order-7"`, `"partition":3`, `"seq":42`, `"fencing_token":9`, `"bytes":2`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %s lacks %s", buf.String(), want)
		}
	}
}
