package main

import (
	"fmt"
	"strings"

	"github.com/ringkv/ringkv/peer/keyring"
)

// --cluster-secret-file is a keyring secret file (peer/keyring: one
// secret a line, the primary first, re-read when it changes).

// readSecretFile is keyring.ReadFile, its errors naming the flag.
func readSecretFile(path string) ([][]byte, error) {
	secs, err := keyring.ReadFile(path)
	switch {
	case err != nil && strings.HasPrefix(err.Error(), path):
		// "PATH is empty...": the flag names the path.
		return nil, fmt.Errorf("--cluster-secret-file %w", err)
	case err != nil:
		return nil, fmt.Errorf("--cluster-secret-file: %w", err)
	}
	return secs, nil
}

// clusterSecrets returns the node's keyring for cluster name: the secrets
// of file if one is given, else secret (--cluster-secret) if set, else
// none.
func clusterSecrets(name, secret, file string) (*keyring.Keyring, error) {
	if file != "" {
		secs, err := readSecretFile(file)
		if err != nil {
			return nil, err
		}
		return keyring.New(name, secs...), nil
	}
	if secret != "" {
		return keyring.New(name, []byte(secret)), nil
	}
	return keyring.New(name), nil
}
