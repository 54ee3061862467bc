package host

import (
	"errors"
	"fmt"
)

// Exit codes, the process's contract with whoever runs it.
const (
	ExitOK      = 0 // clean stop, also after SIGTERM
	ExitFailure = 1 // start failed, a background service failed, or shutdown timed out
	ExitUsage   = 2 // invalid configuration or usage
	// A forced exit on a second termination signal is 128 + the signal's number,
	// the shell's convention (130 for SIGINT, 143 for SIGTERM).
)

// ExitError is an error that carries its own exit code.
type ExitError struct {
	Code int
	Err  error
}

// Error says the code and the cause.
func (e *ExitError) Error() string {
	return fmt.Sprintf("exit %d: %v", e.Code, e.Err)
}

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps what Run or Main's steps returned to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	if _, ok := errors.AsType[*ConfigError](err); ok {
		return ExitUsage
	}
	return ExitFailure
}
