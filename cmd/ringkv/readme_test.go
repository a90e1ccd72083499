package main

import (
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEBackupNodes: the ids README's backup example passes to
// --nodes are ids that its cluster recipe's nodes get (--node-id, else
// HOSTNAME-PORT as peer.ResolveNodeID makes them).
func TestREADMEBackupNodes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	host, _ := os.Hostname()
	section := func(title string) string {
		_, s, ok := strings.Cut(readme, "\n## "+title+"\n")
		if !ok {
			t.Fatalf("README has no section %q", title)
		}
		s, _, _ = strings.Cut(s, "\n## ")
		return s
	}
	ids := map[string]bool{}
	flagOf := func(line, name string) string {
		m := regexp.MustCompile(`--` + name + `[ =]("[^"]*"|\S+)`).FindStringSubmatch(line)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(strings.Trim(m[1], `"`), "$(hostname)", host)
	}
	for _, l := range strings.Split(section("Running a cluster"), "\n") {
		if !strings.Contains(l, "ringkv serve ") {
			continue
		}
		id := flagOf(l, "node-id")
		if id == "" {
			_, port, err := net.SplitHostPort(flagOf(l, "http-addr"))
			if err != nil {
				t.Fatalf("recipe line %q: %v", l, err)
			}
			id = host + "-" + port
		}
		ids[id] = true
	}
	n := 0
	for _, l := range strings.Split(section("Backup and restore"), "\n") {
		if !strings.Contains(l, "ringkv backup ") || !strings.Contains(l, "--nodes") {
			continue
		}
		for _, id := range strings.Split(flagOf(l, "nodes"), ",") {
			n++
			if !ids[id] {
				t.Errorf("README: %q names node %q, which the cluster recipe does not make (it makes %v)", strings.TrimSpace(l), id, ids)
			}
		}
	}
	if n == 0 || len(ids) == 0 {
		t.Fatalf("README: found %d --nodes ids and %d recipe nodes", n, len(ids))
	}
}
