//go:build !(linux || darwin || freebsd)

package engine

// lockHolder cannot ask this OS who holds a lock.
func lockHolder(string) string { return "" }
