// Package greet is the job handler of docs/extending.md, kept here so that
// tests compile and run it. In a real service greet.go goes into a package
// of the service's own (the guide copies it to internal/greet); this
// directory only exists so that the guide cannot drift from code that
// works. Nothing imports it.
package greet
