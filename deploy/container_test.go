package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imageRun is how the tests run the image's final stage: its user,
// environment and entrypoint, with the addresses moved to loopback ports
// of the test.
type imageRun struct {
	cfg                  imageConfig
	uid, gid             int
	env                  []string // the image's ENV, addresses replaced
	httpAddr, gossipAddr string
}

func newImageRun(t *testing.T) imageRun {
	t.Helper()
	cfg := imageConfigOf(t, finalStage(parseDockerfile(t, "Dockerfile")))
	u, g, _ := strings.Cut(cfg.user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil {
		t.Fatalf("USER %q: want UID:GID", cfg.user)
	}
	r := imageRun{cfg: cfg, uid: uid, gid: gid,
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), gossipAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	for k, v := range cfg.env {
		switch k {
		case "RINGKV_HTTP_ADDR":
			v = r.httpAddr
		case "RINGKV_GOSSIP_ADDR":
			v = r.gossipAddr
		}
		r.env = append(r.env, k+"="+v)
	}
	slices.Sort(r.env)
	return r
}

// TestStaticBinaryInEmptyRoot runs the binary as the image would, without
// a container runtime: alone in an empty root (chroot, its own mount and
// PID namespaces, so it is PID 1 as in a container), as the image's
// numeric user, with only the image's environment. It must serve, write
// its store in the volume's directory, and exit 0 on SIGTERM.
func TestStaticBinaryInEmptyRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (chroot, namespaces, another uid); CI runs as root")
		}
		t.Skip("needs root (chroot, namespaces, another uid)")
	}
	r := newImageRun(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := r.cfg.entrypoint
	copyFile(t, ringkvBinary(t), filepath.Join(root, entry[0]), 0o755)
	dataDir := r.cfg.env["RINGKV_DATA_DIR"]
	hostData := filepath.Join(root, dataDir)
	if err := os.MkdirAll(filepath.Dir(hostData), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(hostData, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(hostData, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(entry[0], entry[1:]...)
	cmd.Path = entry[0] // a path inside the new root
	cmd.Dir = "/"
	cmd.Env = r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)},
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
	}
	n := startProcess(t, cmd)
	waitOK(t, n, "http://"+r.httpAddr+"/healthz")
	if err := n.stop(t); err != nil {
		t.Errorf("SIGTERM to the node as PID 1: %v, want exit 0", err)
	}
	entries, err := os.ReadDir(hostData)
	if err != nil || len(entries) == 0 {
		t.Errorf("the node wrote nothing in %s (%v)", dataDir, err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

var copyFromBuild = regexp.MustCompile(`^((?:--[a-z]+=\S+\s+)*)--from=build\s+((?:--[a-z]+=\S+\s+)*)(/\S+)\s+(/\S+)$`)

// localContainerfile turns the Dockerfile's final stage into one that
// takes what it copies from the build stage out of a local context dir,
// which it fills: the binary built here, the CA roots, the data dir.
func localContainerfile(t *testing.T, ctxDir string) string {
	t.Helper()
	stage := finalStage(parseDockerfile(t, "Dockerfile"))
	entry := imageConfigOf(t, stage).entrypoint
	var lines []string
	for _, in := range stage {
		line := in.cmd + " " + in.args
		if in.cmd == "COPY" {
			m := copyFromBuild.FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("final stage: COPY %s is not COPY --from=build SRC DST", in.args)
			}
			src := m[3]
			local := filepath.Join(ctxDir, src)
			switch {
			case len(entry) > 0 && m[4] == entry[0]:
				copyFile(t, ringkvBinary(t), local, 0o755)
			case strings.HasSuffix(src, ".crt"):
				if _, err := os.Stat(src); err == nil {
					copyFile(t, src, local, 0o644)
				} else if err := os.MkdirAll(filepath.Dir(local), 0o755); err == nil {
					_ = os.WriteFile(local, nil, 0o644)
				}
			default: // a directory the build stage makes
				if err := os.MkdirAll(local, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			line = "COPY " + m[1] + m[2] + strings.TrimPrefix(src, "/") + " " + m[4]
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n") + "\n"
}

// podman runs podman, returning its output.
func podman(args ...string) (string, error) {
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// TestContainerImage builds the Dockerfile's final stage with podman
// (from scratch, offline: the binary is the one built here, not the
// golang stage's), checks the image's configuration, runs it as the
// image says (with a read-only root, as in Kubernetes) and stops it with
// its stop signal.
func TestContainerImage(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("no podman (Debian: apt-get install podman runc)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for podman's network and volumes")
	}
	r := newImageRun(t)
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(localContainerfile(t, ctxDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("localhost/ringkv-deploy-test:%d", os.Getpid())
	if out, err := podman("build", "-q", "-f", filepath.Join(ctxDir, "Containerfile"), "-t", tag, ctxDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = podman("rmi", "-f", tag) })
	checkImageConfig(t, tag, r.cfg)

	name := fmt.Sprintf("ringkv-deploy-test-%d", os.Getpid())
	// As the StatefulSet runs it: a read-only root, no capabilities, no
	// privilege escalation; only the volume is writable.
	args := append([]string{"run", "-d", "--name", name, "--network", "host",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}, runtimeArgs()...)
	for _, kv := range r.env {
		if strings.HasPrefix(kv, "RINGKV_HTTP_ADDR=") || strings.HasPrefix(kv, "RINGKV_GOSSIP_ADDR=") {
			args = append(args, "-e", kv)
		}
	}
	out, err := podman(append(args, tag)...)
	t.Cleanup(func() { _, _ = podman("rm", "-f", "-v", name) })
	if err != nil {
		// Only what the machine cannot do skips: an image that does not
		// run is a failure.
		if regexp.MustCompile(`cgroups in hybrid mode|setrlimit|setting rlimit`).MatchString(out) {
			t.Skipf("this machine's container runtime cannot start containers: %v", err)
		}
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the container's GET /healthz", func() error {
		if st, _ := podman("inspect", "-f", "{{.State.Status}}", name); strings.TrimSpace(st) == "exited" {
			logs, _ := podman("logs", name)
			return fmt.Errorf("%w: the container exited: %s", errDone, logs)
		}
		code, body, err := get("http://" + r.httpAddr + "/healthz")
		if err == nil && code != 200 {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
	if out, err := podman("stop", "-t", "30", name); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	code, _ := podman("inspect", "-f", "{{.State.ExitCode}}", name)
	if strings.TrimSpace(code) != "0" {
		logs, _ := podman("logs", name)
		t.Errorf("after podman stop the node exited %s, want 0 (a clean shutdown on %s):\n%s", strings.TrimSpace(code), r.cfg.stopSignal, logs)
	}
}

// runtimeArgs are the podman run flags this kind of machine needs: runc
// where present (crun refuses hybrid cgroup hierarchies), and limits no
// higher than the test's own (a runtime may not raise them).
func runtimeArgs() []string {
	var args []string
	if _, err := exec.LookPath("runc"); err == nil {
		args = append(args, "--runtime", "runc")
	}
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}} {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(l.resource, &rl); err == nil {
			v := min(rl.Cur, 4096)
			args = append(args, "--ulimit", fmt.Sprintf("%s=%d:%d", l.name, v, v))
		}
	}
	return args
}

// checkImageConfig compares the built image's configuration with the
// Dockerfile's final stage.
func checkImageConfig(t *testing.T, tag string, want imageConfig) {
	t.Helper()
	out, err := podman("image", "inspect", tag)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []struct {
		Config struct {
			User         string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			StopSignal   string
			Entrypoint   []string
			Env          []string
		}
	}
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	c := imgs[0].Config
	if c.User != want.user || c.StopSignal != want.stopSignal || !slices.Equal(c.Entrypoint, want.entrypoint) {
		t.Errorf("image: user %q, stop signal %q, entrypoint %q; the Dockerfile says %q, %q, %q", c.User, c.StopSignal, c.Entrypoint, want.user, want.stopSignal, want.entrypoint)
	}
	for _, v := range want.volumes {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("image volumes %v lack %s", c.Volumes, v)
		}
	}
	for _, p := range want.expose {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("image exposed ports %v lack %s", c.ExposedPorts, p)
		}
	}
}
