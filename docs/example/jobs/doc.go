// Package jobs is the job handler of docs/extending.md, kept here so that
// tests compile and run it. In a real service greet.go goes into
// internal/example/jobs, next to the other handlers; this directory only exists so
// that the guide cannot drift from code that works. Nothing imports it.
package jobs
