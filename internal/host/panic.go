package host

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// PanicError is a panic recovered from code the host called: a Start, a
// Stop, a lifecycle hook, a Lifetime callback or a background func. The host
// treats it as that step's error, so the process still stops every other
// service and drains, and exits 1 rather than crashing with the Go runtime's
// exit 2, which the exit-code table keeps for invalid configuration.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack, for the log
}

// Error says "panic:" and the value. It has no Unwrap on purpose: a panic is
// a runtime failure whatever value it carries, so ExitCode maps it to 1.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// catch calls fn and turns a panic in it into a *PanicError.
func catch(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// panicAttrs returns the stack of a recovered panic in err as a log
// attribute, or nothing.
func panicAttrs(err error) []any {
	if pe, ok := asPanic(err); ok {
		return []any{slog.String("stack", string(pe.Stack))}
	}
	return nil
}

func asPanic(err error) (*PanicError, bool) {
	if err == nil {
		return nil, false
	}
	return errors.AsType[*PanicError](err)
}
