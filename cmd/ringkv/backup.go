package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/compaction"
	"github.com/ringkv/ringkv/sstable"
)

const backupUsage = `usage: ringkv backup --to DIR [--addr HOST[:PORT]] [--nodes ID,...]

Takes a consistent copy of every member's store (a Pebble checkpoint, taken
with the WAL flushed, so every write acknowledged before it is in it) over
HTTP and writes it to DIR/ID/, one directory per node, with DIR/backup.json
describing the cluster. --nodes backs up exactly the members it names
('ringkv cluster status' lists their ids); without it, every member but
those that left. Each node's copy is verified against its manifest
(file sizes and hashes) before it is kept. DIR must not exist.

Restore a node with 'ringkv restore --from DIR/ID --data-dir D', then start
it with its old --http-addr and --gossip-addr: it comes back with its
identity and member list. See README.md, "Backup and restore".

Exit 0 when every selected node was backed up; 1 when any failed (the
others are kept); 2 for bad usage or a node that cannot be reached.`

// backupManifest is DIR/backup.json.
type backupManifest struct {
	TakenAt  time.Time    `json:"taken_at"`
	From     string       `json:"from"`
	Replicas int          `json:"replicas"`
	VNodes   int          `json:"vnodes"`
	Nodes    []backupNode `json:"nodes"`
}

type backupNode struct {
	ID         string  `json:"id"`
	HTTPAddr   string  `json:"http_addr"`
	GossipAddr string  `json:"gossip_addr"`
	Dir        string  `json:"dir"`
	Files      int     `json:"files"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	Error      string  `json:"error,omitempty"`
}

// backupConfig holds the flags of 'ringkv backup'.
type backupConfig struct {
	node      nodeFlags
	to, nodes string
}

func backupFlags(env *environ, c *backupConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("ringkv backup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.node.add(fs, env, "any member's HTTP address")
	fs.StringVar(&c.to, "to", "", "directory to create for the backup (required)")
	fs.StringVar(&c.nodes, "nodes", "", "comma-separated ids of the nodes to back up, and only those (default: every member that has not left)")
	fs.Lookup("timeout").Usage = "longest wait to connect to a node, for its answer to start, and between two parts of it"
	return fs
}

// backupCmd runs 'ringkv backup'.
func backupCmd(args []string, env *environ, stdout, stderr io.Writer) int {
	fail := failer(stderr, "ringkv backup")
	var c backupConfig
	fs := backupFlags(env, &c)
	pos, err := parseFlags(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return printUsage(stdout, backupUsage, fs)
	case err != nil:
		return fail("%v", err)
	case len(pos) != 0:
		return fail("unexpected argument %q", pos[0])
	case c.to == "":
		return fail("--to DIR is required")
	}
	if _, err := os.Stat(c.to); err == nil {
		return fail("--to %s already exists; a backup goes to a new directory", c.to)
	}
	cl, err := c.node.client()
	if err != nil {
		return fail("%v", err)
	}
	defer cl.CloseIdleConnections()
	ctx := context.Background()
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		fail("cluster status: %v", err)
		return exitCode(err)
	}
	members, err := selectMembers(st.Members, c.nodes)
	if err != nil {
		return fail("%v", err)
	}
	m := backupManifest{TakenAt: time.Now().UTC(), From: c.node.addr, Replicas: st.Replicas, VNodes: st.VNodes}
	for _, mb := range members {
		m.Nodes = append(m.Nodes, backupNode{ID: mb.ID, HTTPAddr: mb.HTTPAddr, GossipAddr: mb.GossipAddr, Dir: safeDirName(mb.ID)})
	}
	if err := os.MkdirAll(c.to, 0o755); err != nil {
		return fail("--to: %v", err)
	}
	code := backupNodes(ctx, cl, m.Nodes, c.to, stdout, stderr)
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(c.to, "backup.json"), append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "ringkv backup: %v\n", err)
		return exitFailure
	}
	return code
}

// selectMembers returns the members to back up: those named in the
// comma-separated ids, exactly, or with none named every member that has
// not left (one that left holds no ranges: it is backed up only by name).
func selectMembers(members []client.Member, ids string) ([]client.Member, error) {
	want := map[string]bool{}
	for _, id := range strings.Split(ids, ",") {
		if id = strings.TrimSpace(id); id != "" {
			want[id] = true
		}
	}
	var out []client.Member
	found := map[string]bool{}
	for _, mb := range members {
		if len(want) > 0 && want[mb.ID] || len(want) == 0 && mb.State != client.Left {
			out = append(out, mb)
			found[mb.ID] = true
		}
	}
	var missing []string
	for id := range want {
		if !found[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	switch {
	case len(missing) > 0:
		return nil, fmt.Errorf("--nodes: %s is not a member (see 'ringkv cluster status')", strings.Join(missing, ", "))
	case len(out) == 0:
		return nil, errors.New("no members to back up")
	}
	return out, nil
}

// backupNodes backs each node up in turn into DIR/node.Dir, recording
// the outcome in nodes; exit 1 when any failed.
func backupNodes(ctx context.Context, cl *client.Client, nodes []backupNode, to string, stdout, stderr io.Writer) int {
	code := exitOK
	for i := range nodes {
		n := &nodes[i]
		start := time.Now()
		mf, err := backupNodeTo(ctx, cl, n.HTTPAddr, filepath.Join(to, n.Dir))
		n.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
		if err != nil {
			n.Error = err.Error()
			fmt.Fprintf(stderr, "ringkv backup: %s (%s): %s\n", n.ID, n.HTTPAddr, oneLine(err.Error()))
			code = exitFailure
			continue
		}
		n.Files, n.Bytes = len(mf.Files), mf.Bytes
		fmt.Fprintf(stdout, "%s (%s): %d files, %s in %.1fs -> %s\n", n.ID, n.HTTPAddr, n.Files, compaction.FormatBytes(uint64(n.Bytes)), n.Seconds, filepath.Join(to, n.Dir))
	}
	return code
}

// backupNodeTo streams the backup of the node at addr (with the scheme of
// the client's address) into dir.
func backupNodeTo(ctx context.Context, cl *client.Client, addr, dir string) (sstable.Manifest, error) {
	node, err := cl.Node(addr)
	if err != nil {
		return sstable.Manifest{}, err
	}
	rc, err := node.Backup(ctx)
	if err != nil {
		return sstable.Manifest{}, err
	}
	defer rc.Close()
	return sstable.Extract(rc, dir)
}

// safeDirName makes a node id usable as a directory name.
func safeDirName(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if s := string(b); s != "" && s != "." && s != ".." {
		return s
	}
	return "node"
}

const restoreUsage = `usage: ringkv restore --from DIR --data-dir D

Restores one node's backup (DIR is a node's directory of 'ringkv backup',
e.g. BACKUP/ID) into the data directory D, which must not exist or be
empty. The files are checked against the backup's manifest, copied, and
opened as a store before D is put in place. Then start the node on D with
its old addresses; to restore a cluster, restore and start every node.

Exit 0 on success; 1 when the backup is damaged or does not open; 2 for bad
usage.`

// restoreCmd runs 'ringkv restore'.
func restoreCmd(args []string, stdout, stderr io.Writer) int {
	var from, dataDir string
	fs := flag.NewFlagSet("ringkv restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&from, "from", "", "a node's backup directory (required)")
	fs.StringVar(&dataDir, "data-dir", "", "the data directory to create (required)")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ringkv restore: %s\n", fmt.Sprintf(format, a...))
		return exitUsage
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, restoreUsage, fs)
	}
	switch {
	case err != nil:
		return fail("%v", err)
	case len(pos) != 0:
		return fail("unexpected argument %q", pos[0])
	case from == "" || dataDir == "":
		return fail("--from DIR and --data-dir D are required")
	}
	if _, err := os.Stat(filepath.Join(from, "backup.json")); err == nil {
		return fail("%s is a whole cluster's backup; name one node's directory in it, e.g. --from %s", from, filepath.Join(from, "ID"))
	}
	m, err := sstable.Restore(from, dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "ringkv restore: %s\n", oneLine(err.Error()))
		return exitFailure
	}
	fmt.Fprintf(stdout, "restored %d files, %s (backup of %s) into %s\n", len(m.Files), compaction.FormatBytes(uint64(m.Bytes)), m.TakenAt.Format(time.RFC3339), dataDir)
	return exitOK
}
