package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile returns the instructions of a Dockerfile.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// finalStage returns the instructions from the last FROM on.
func finalStage(ins []instruction) []instruction {
	last := 0
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return ins[last:]
}

// dockerEnv returns the variables an ENV instruction sets (KEY=VALUE form).
func dockerEnv(args string) map[string]string {
	env := map[string]string{}
	for _, f := range strings.Fields(args) {
		if k, v, ok := strings.Cut(f, "="); ok {
			env[k] = v
		}
	}
	return env
}

// imageConfig is what the final stage makes of the image.
type imageConfig struct {
	from, user, stopSignal string
	env                    map[string]string
	volumes, expose        []string
	entrypoint             []string
	runs                   int
}

func imageConfigOf(t *testing.T, stage []instruction) imageConfig {
	t.Helper()
	c := imageConfig{env: map[string]string{}}
	for _, in := range stage {
		switch in.cmd {
		case "FROM":
			c.from = in.args
		case "USER":
			c.user = in.args
		case "STOPSIGNAL":
			c.stopSignal = in.args
		case "ENV":
			for k, v := range dockerEnv(in.args) {
				c.env[k] = v
			}
		case "VOLUME":
			if err := json.Unmarshal([]byte(in.args), &c.volumes); err != nil {
				c.volumes = strings.Fields(in.args)
			}
		case "EXPOSE":
			c.expose = append(c.expose, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &c.entrypoint); err != nil {
				t.Errorf("ENTRYPOINT %s: not the exec form (a shell form needs a shell): %v", in.args, err)
			}
		case "RUN":
			c.runs++
		}
	}
	return c
}

// TestDockerfile: a static, trimmed, versioned build; a final stage on
// an empty base, with no shell needed, a numeric non-root user, the data
// dir as a volume, the ports its addresses use exposed, SIGTERM to stop,
// and ringkv serve configured by RINGKV_* variables that exist.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	var build string
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags", "./cmd/ringkv"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build (RUN %s) lacks %s", build, want)
		}
	}
	// The version the build stamps in is the one ringkv reports.
	if out, err := exec.Command(ringkvBinary(t), "version").CombinedOutput(); err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("ringkv version of a build with the Dockerfile's -ldflags and VERSION=%s: %q %v", testVersion, out, err)
	}
	c := imageConfigOf(t, finalStage(ins))
	if f := strings.Fields(c.from); len(f) == 0 || (f[0] != "scratch" && !strings.Contains(f[0], "distroless/static")) {
		t.Errorf("final stage FROM %s: want scratch or distroless/static", c.from)
	}
	if c.runs > 0 {
		t.Errorf("the final stage has %d RUN instructions: it has no shell to run them", c.runs)
	}
	uid, _, _ := strings.Cut(c.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root user (there is no user database)", c.user)
	}
	if c.stopSignal != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q, want SIGTERM", c.stopSignal)
	}
	if !slices.Equal(c.entrypoint, []string{"/ringkv", "serve"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/ringkv\", \"serve\"]", c.entrypoint)
	}
	if dd := c.env["RINGKV_DATA_DIR"]; dd == "" || !slices.Contains(c.volumes, dd) {
		t.Errorf("RINGKV_DATA_DIR %q is not a VOLUME (%v)", dd, c.volumes)
	}
	hp, gp := portOf(t, c.env["RINGKV_HTTP_ADDR"]), portOf(t, c.env["RINGKV_GOSSIP_ADDR"])
	for _, want := range []string{hp + "/tcp", gp + "/tcp", gp + "/udp"} {
		if !slices.Contains(c.expose, want) && !(strings.HasSuffix(want, "/tcp") && slices.Contains(c.expose, strings.TrimSuffix(want, "/tcp"))) {
			t.Errorf("EXPOSE %v lacks %s", c.expose, want)
		}
	}
	var names []string
	for k := range c.env {
		names = append(names, k)
	}
	checkRingkvEnv(t, "the Dockerfile", names)
}

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Environment     map[string]string `json:"environment"`
		Ports           []string          `json:"ports"`
		Volumes         []string          `json:"volumes"`
		StopGracePeriod string            `json:"stop_grace_period"`
		Secrets         []map[string]any  `json:"secrets"`
	} `json:"services"`
	Secrets map[string]struct {
		File string `json:"file"`
	} `json:"secrets"`
	Volumes map[string]any `json:"volumes"`
}

// TestCompose: three nodes that join each other by service name, share
// one cluster secret file, each with a volume of its own at the data dir,
// advertise their service names, stop cleanly, and use RINGKV_* variables
// that exist.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(cf.Services) != 3 {
		t.Fatalf("compose.yaml has %d services, want 3", len(cf.Services))
	}
	img := imageConfigOf(t, finalStage(parseDockerfile(t, "Dockerfile")))
	dataDir := img.env["RINGKV_DATA_DIR"]
	gossipPort, httpPort := portOf(t, img.env["RINGKV_GOSSIP_ADDR"]), portOf(t, img.env["RINGKV_HTTP_ADDR"])
	var names []string
	for name := range cf.Services {
		names = append(names, name)
	}
	volumes := map[string]string{}
	for name, s := range cf.Services {
		env := s.Environment
		var vars []string
		for k := range env {
			vars = append(vars, k)
		}
		checkRingkvEnv(t, "compose service "+name, vars)
		joins := strings.Split(env["RINGKV_JOIN"], ",")
		for _, other := range names {
			if !slices.Contains(joins, other+":"+gossipPort) {
				t.Errorf("%s: RINGKV_JOIN %q does not name %s:%s", name, env["RINGKV_JOIN"], other, gossipPort)
			}
		}
		if env["RINGKV_ADVERTISE_HTTP_ADDR"] != name+":"+httpPort || env["RINGKV_ADVERTISE_GOSSIP_ADDR"] != name+":"+gossipPort {
			t.Errorf("%s: advertises %q and %q, want its service name at ports %s and %s", name, env["RINGKV_ADVERTISE_HTTP_ADDR"], env["RINGKV_ADVERTISE_GOSSIP_ADDR"], httpPort, gossipPort)
		}
		if v := env["RINGKV_BOOTSTRAP_EXPECT"]; v != "" && v != fmt.Sprint(len(cf.Services)) {
			t.Errorf("%s: RINGKV_BOOTSTRAP_EXPECT %s, want the %d services", name, v, len(cf.Services))
		}
		checkComposeSecret(t, name, env["RINGKV_CLUSTER_SECRET_FILE"], s.Secrets, cf.Secrets)
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if dst == dataDir {
				if prev, ok := volumes[src]; ok {
					t.Errorf("%s and %s share the volume %s", prev, name, src)
				}
				volumes[src] = name
			}
		}
		for _, p := range s.Ports {
			if !strings.HasSuffix(p, ":"+httpPort) {
				t.Errorf("%s: port %q does not publish the HTTP port %s", name, p, httpPort)
			}
		}
		st := 30 * time.Second
		if v := env["RINGKV_SHUTDOWN_TIMEOUT"]; v != "" {
			st, _ = time.ParseDuration(v)
		}
		if g, err := time.ParseDuration(s.StopGracePeriod); err != nil || g < st+10*time.Second {
			t.Errorf("%s: stop_grace_period %q, want more than --shutdown-timeout %v", name, s.StopGracePeriod, st)
		}
	}
	if len(volumes) != 3 {
		t.Errorf("want each service its own volume at %s, got %v", dataDir, volumes)
	}
}

// checkComposeSecret: the secret file a service reads is a compose
// secret (a file) it mounts.
func checkComposeSecret(t *testing.T, name, path string, mounted []map[string]any, secrets map[string]struct {
	File string `json:"file"`
}) {
	t.Helper()
	for _, m := range mounted {
		src := fmt.Sprint(m["source"])
		target := fmt.Sprint(m["target"])
		if !regexp.MustCompile(`^/`).MatchString(target) {
			target = "/run/secrets/" + target
		}
		if target == path && secrets[src].File != "" {
			return
		}
	}
	t.Errorf("%s: RINGKV_CLUSTER_SECRET_FILE %q is no compose secret it mounts", name, path)
}

// TestComposeNodesFormCluster runs the compose file's three nodes as
// processes with the environment compose gives them (the image's, then
// the service's), each host on loopback ports of its own in place of the
// service names, all started at once with one cluster secret file: they
// must form one ring of three.
func TestComposeNodesFormCluster(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	img := imageConfigOf(t, finalStage(parseDockerfile(t, "Dockerfile")))
	httpPort, gossipPort := portOf(t, img.env["RINGKV_HTTP_ADDR"]), portOf(t, img.env["RINGKV_GOSSIP_ADDR"])
	dir := t.TempDir()
	secret := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range cf.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	// Each service's host becomes loopback ports of its own.
	var pairs []string
	addrs := map[string][2]string{}
	for _, name := range names {
		a := [2]string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		addrs[name] = a
		pairs = append(pairs, name+":"+httpPort, a[0], name+":"+gossipPort, a[1])
	}
	hosts := strings.NewReplacer(pairs...)
	var nodes []*node
	for _, name := range names {
		s := cf.Services[name]
		env := map[string]string{}
		for k, v := range img.env {
			env[k] = v
		}
		for k, v := range s.Environment {
			env[k] = hosts.Replace(v)
		}
		env["RINGKV_HTTP_ADDR"], env["RINGKV_GOSSIP_ADDR"] = addrs[name][0], addrs[name][1]
		env["RINGKV_DATA_DIR"] = filepath.Join(dir, name)
		env["RINGKV_CLUSTER_SECRET_FILE"] = secret
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		cmd := exec.Command(ringkvBinary(t), img.entrypoint[1:]...)
		cmd.Dir, cmd.Env = dir, cleanEnv(kv...)
		nodes = append(nodes, startProcess(t, cmd))
	}
	for i, name := range names {
		waitOK(t, nodes[i], "http://"+addrs[name][0]+"/healthz")
	}
	for _, name := range names {
		waitFor(t, 60*time.Second, name+" sees 3 members alive", func() error { return membersAlive(addrs[name][0], 3) })
	}
}
