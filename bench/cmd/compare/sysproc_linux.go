package main

import "syscall"

// sysProcAttr puts a child in a process group of its own (a Ctrl-C at the
// terminal reaches only the driver, which stops its children in order)
// and has the kernel kill it should the driver die without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
