package host

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// LogLevels and LogFormats are the values log.level and log.format accept.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"auto", "text", "json"}
)

// NewLogger returns a slog logger writing to w. Format "json" writes one JSON
// object a line, for log collectors; "text" writes tint's human-readable
// lines, coloured when w is a terminal; "auto" picks text on a terminal and
// JSON otherwise, so a container's logs are JSON without any setting.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	tty := isTerminal(w)
	switch format {
	case "json":
	case "text":
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lv, TimeFormat: time.TimeOnly, NoColor: !tty})), nil
	case "auto":
		if tty {
			return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lv, TimeFormat: time.TimeOnly})), nil
		}
	default:
		return nil, fmt.Errorf("log format %q: must be one of auto, text, json", format)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
