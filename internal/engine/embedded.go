package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedReadyTimeout bounds how long the embedded server may take to
// recover its streams from disk and accept connections.
const embeddedReadyTimeout = 30 * time.Second

// startEmbedded starts a single JetStream server storing in cfg.StoreDir.
func startEmbedded(cfg Config, log *slog.Logger) (*server.Server, error) {
	host, port, err := splitAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	storeDir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.store_dir: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   storeDir,
		SyncAlways: cfg.SyncAlways,
		DontListen: cfg.Addr == "",
		Host:       host,
		Port:       port,
		NoSigs:     true, // the host owns the signals
		NoLog:      true, // replaced by the slog adapter below
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	logger := &serverLogger{log: log.With("component", "nats-server"), fatal: make(chan string, 1)}
	srv.SetLoggerV2(logger, false, false, false)
	srv.Start()
	if err := waitReady(srv, logger.fatal); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS on %q: %w", cfg.Addr, err)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS: JetStream failed to start with store %s", storeDir)
	}
	attrs := []any{"store_dir", storeDir, "sync_always", cfg.SyncAlways}
	if cfg.Addr == "" {
		attrs = append(attrs, "listen", "in-process only")
	} else {
		attrs = append(attrs, "listen", srv.ClientURL())
	}
	log.Info("embedded NATS JetStream started", attrs...)
	return srv, nil
}

// waitReady waits until the server accepts connections. A fatal error (a
// port in use) is reported through the logger rather than returned by Start,
// so it is watched for too instead of waiting out the whole timeout.
func waitReady(srv *server.Server, fatal <-chan string) error {
	deadline := time.Now().Add(embeddedReadyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-fatal:
			return fmt.Errorf("%s", msg)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", embeddedReadyTimeout)
		}
	}
	return nil
}

// shutdownEmbedded stops the server and waits for its store to be closed,
// bounded by ctx. Shutdown flushes the streams to disk.
func shutdownEmbedded(ctx context.Context, srv *server.Server) error {
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down embedded NATS: %w", ctx.Err())
	}
}

// splitAddr turns nats.embedded.addr into server options. Port 0 asks for a
// free port, which the server spells -1.
func splitAddr(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nats.embedded.addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("nats.embedded.addr %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// serverLogger routes the embedded server's log through slog. Its notices
// (a banner of some twenty lines at start) go to debug; the engine logs one
// line of its own instead.
// Fatal errors are also sent to fatal (without blocking) for waitReady.
type serverLogger struct {
	log   *slog.Logger
	fatal chan string
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l *serverLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
