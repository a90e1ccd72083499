package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ringkv/ringkv/peer"
)

// This file is --cluster-secret-file: the cluster's secrets, one a line,
// the primary (the one this node encrypts and signs with) first, "#"
// comments and blank lines ignored. The file is read again when it
// changes, so a secret is rotated without a restart: add the new secret
// as the second line on every node, then make it the first everywhere,
// then drop the old one (SECURITY.md).

// secretFilePoll is how often --cluster-secret-file is checked for a
// change.
const secretFilePoll = 3 * time.Second

// maxSecretFile bounds the file read: a few secrets, not a data file.
const maxSecretFile = 64 << 10

// readSecretFile returns the secrets of a --cluster-secret-file, primary
// first. A file without one is an error: it would turn encryption off.
func readSecretFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file: %v", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("--cluster-secret-file %s: %d bytes, more than %d", path, len(b), maxSecretFile)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxSecretFile)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--cluster-secret-file %s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--cluster-secret-file %s is empty: it holds no secret (one a line, the primary first)", path)
	}
	return out, nil
}

// clusterSecrets returns the node's keyring for cluster name: the secrets
// of file if one is given, else secret (--cluster-secret) if set, else
// none.
func clusterSecrets(name, secret, file string) (*peer.Secrets, error) {
	if file != "" {
		secs, err := readSecretFile(file)
		if err != nil {
			return nil, err
		}
		return peer.NewSecrets(name, secs...), nil
	}
	if secret != "" {
		return peer.NewSecrets(name, []byte(secret)), nil
	}
	return peer.NewSecrets(name), nil
}

// watchSecretFile re-reads path into s whenever its modification time or
// size changes, checking every poll, until the returned stop is called
// (which waits for the goroutine to end; calling it again is harmless).
// A file that cannot be read or holds no secret is logged, and the
// secrets stay as they were.
func watchSecretFile(path string, s *peer.Secrets, poll time.Duration, lg *slog.Logger) (stop func()) {
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
					lg.Warn("cannot check --cluster-secret-file", "err", err)
				}
				continue
			}
			secs, err := readSecretFile(path)
			if err != nil {
				lg.Error("keeping the cluster secrets in use", "err", err)
				continue
			}
			last = cur
			s.Set(secs...)
			lg.Info("cluster secrets reloaded", "file", path, "secrets", len(secs))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }); <-done }
}
