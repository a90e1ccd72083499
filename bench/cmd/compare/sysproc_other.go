//go:build !linux

package main

import "syscall"

// sysProcAttr puts a child in a process group of its own. (The driver
// reads /proc, so it measures only on Linux.)
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
