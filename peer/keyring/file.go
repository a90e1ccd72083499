package keyring

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// A secret file holds a cluster's secrets, one a line, the primary (the
// one a node encrypts and signs with) first, "#" comments and blank lines
// ignored. Watch reads it again when it changes, so a secret is rotated
// without a restart: add the new secret as the second line on every node,
// then make it the first everywhere, then drop the old one (SECURITY.md).

// DefaultFilePoll is how often a watched secret file is checked for a
// change.
const DefaultFilePoll = 3 * time.Second

// MaxFileSize bounds the file read: a few secrets, not a data file.
const MaxFileSize = 64 << 10

// ReadFile returns the secrets of a secret file, primary first. A file
// without one is an error: it would turn encryption off.
func ReadFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, len(b), MaxFileSize)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxFileSize)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty: it holds no secret (one a line, the primary first)", path)
	}
	return out, nil
}

// Watch re-reads path into k whenever its modification time or size
// changes, checking every poll, until the returned stop is called (which
// waits for the goroutine to end; calling it again is harmless). A file
// that cannot be read or holds no secret is logged, and the secrets stay
// as they were.
func Watch(path string, k *Keyring, poll time.Duration, lg *slog.Logger) (stop func()) {
	type stamp struct {
		mod  time.Time
		size int64
	}
	statOf := func() (stamp, error) {
		fi, err := os.Stat(path)
		if err != nil {
			return stamp{}, err
		}
		return stamp{fi.ModTime(), fi.Size()}, nil
	}
	last, _ := statOf()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			cur, err := statOf()
			if err != nil || cur == last {
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					lg.Warn("cannot check the secret file", "file", path, "err", err)
				}
				continue
			}
			secs, err := ReadFile(path)
			if err != nil {
				lg.Error("keeping the cluster secrets in use", "err", err)
				continue
			}
			last = cur
			k.Set(secs...)
			lg.Info("cluster secrets reloaded", "file", path, "secrets", len(secs))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }); <-done }
}
