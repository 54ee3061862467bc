// Package runtest helps tests of code that runs alongside them: servers,
// child processes and goroutines a test starts and then watches. It gives
// such a test a free loopback address to serve on (FreeAddr, FreePort), a
// deadline-bounded wait for a state the code reaches (Poll, Eventually)
// instead of a fixed sleep, a Buffer for the code's output that the test may
// read while the code still writes, and a Silencer that makes a server stop
// answering without closing its connections, as a frozen server does.
//
// It is a plain package, not a _test file, so that the tests of every
// package share one implementation; only tests import it.
package runtest
