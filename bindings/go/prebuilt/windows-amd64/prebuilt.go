// Package prebuilt holds no code. Its Go file exists so that `go mod vendor`
// keeps this directory, whose libbill.a the parent package links.
package prebuilt
