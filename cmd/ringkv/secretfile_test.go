package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileErrorsNameTheFlag: keyring's errors name the file; the
// CLI's name the flag it came from.
func TestSecretFileErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := clusterSecrets("c", "", p); err == nil || !strings.HasPrefix(err.Error(), "--cluster-secret-file") {
			t.Errorf("%s: %v, want an error naming --cluster-secret-file", filepath.Base(p), err)
		}
	}
}
