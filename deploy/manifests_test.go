package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const manifestDir = "kubernetes"

// manifest is one object of a manifest file, decoded into its k8s.io/api
// type.
type manifest struct {
	where string // file and document number
	obj   any    // *appsv1.StatefulSet, *corev1.Service, ...
}

// newObject returns a pointer to the k8s.io/api type of apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	}
	return nil, fmt.Errorf("unexpected object %s %s (add its type to newObject)", apiVersion, kind)
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifests strict-decodes every YAML document of b: a field the
// type does not have is an error.
func decodeManifests(name string, b []byte) ([]manifest, error) {
	var out []manifest
	for i, doc := range docSeparator.Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		where := fmt.Sprintf("%s, document %d", name, i+1)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		out = append(out, manifest{where, obj})
	}
	return out, nil
}

// manifestFiles returns the manifest files (every YAML file but the
// kustomization), sorted.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if filepath.Base(n) != "kustomization.yaml" {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	sort.Strings(out)
	return out
}

// loadManifests strict-decodes every manifest file.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var all []manifest
	for _, f := range manifestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := decodeManifests(f, b)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}
	return all
}

// objects are the manifests' objects by type; each test needs a few.
type objects struct {
	sts      *appsv1.StatefulSet
	services map[string]*corev1.Service
	pdb      *policyv1.PodDisruptionBudget
}

func loadObjects(t *testing.T) objects {
	t.Helper()
	o := objects{services: map[string]*corev1.Service{}}
	for _, m := range loadManifests(t) {
		switch v := m.obj.(type) {
		case *appsv1.StatefulSet:
			if o.sts != nil {
				t.Fatalf("%s: a second StatefulSet", m.where)
			}
			o.sts = v
		case *corev1.Service:
			o.services[v.Name] = v
		case *policyv1.PodDisruptionBudget:
			o.pdb = v
		}
	}
	if o.sts == nil || o.pdb == nil || len(o.services) != 2 {
		t.Fatalf("want one StatefulSet, one PodDisruptionBudget and two Services, got %+v", o)
	}
	return o
}

// TestManifestsDecodeStrict: every object of every manifest, and of the
// kustomization's output, decodes into its k8s.io/api type with no
// unknown field, and the kustomization lists every manifest.
func TestManifestsDecodeStrict(t *testing.T) {
	direct := loadManifests(t)

	b, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var want []string
	for _, f := range manifestFiles(t) {
		want = append(want, filepath.Base(f))
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if k.Kind != "Kustomization" || !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml: kind %q, resources %v; want Kustomization of %v", k.Kind, got, want)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("no kubectl: the kustomize output is not checked")
		return
	}
	out, err := exec.Command(kubectl, "kustomize", manifestDir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", manifestDir, err)
	}
	built, err := decodeManifests("kubectl kustomize output", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(built) != len(direct) {
		t.Errorf("kubectl kustomize gives %d objects, the files %d", len(built), len(direct))
	}
}

// container returns the StatefulSet's ringkv container.
func container(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	cs := sts.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("StatefulSet %s: want one container, got %d", sts.Name, len(cs))
	}
	return &cs[0]
}

// envOf returns a container's env as a map, with fieldRef variables
// mapped to their fields.
func envOf(c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	return env
}

// TestStatefulSetShape: the StatefulSet has what the issue asks of it,
// and its parts agree with each other.
func TestStatefulSetShape(t *testing.T) {
	o := loadObjects(t)
	sts := o.sts
	spec, pod := &sts.Spec, &sts.Spec.Template.Spec
	c := container(t, sts)
	env := envOf(c)

	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel", spec.PodManagementPolicy)
	}
	if !matches(spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
		t.Errorf("selector %v does not select the pod template's labels %v", spec.Selector.MatchLabels, sts.Spec.Template.Labels)
	}
	hs := o.services[spec.ServiceName]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("serviceName %q: want a headless Service (clusterIP None) with publishNotReadyAddresses", spec.ServiceName)
	}
	// Claims: one ReadWriteOnce claim per pod, mounted at the data dir.
	claims := map[string]bool{}
	for _, vc := range spec.VolumeClaimTemplates {
		claims[vc.Name] = true
		if !slices.Equal(vc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
			t.Errorf("volumeClaimTemplate %s: access modes %v, want [ReadWriteOnce]", vc.Name, vc.Spec.AccessModes)
		}
		if vc.Spec.Resources.Requests.Storage().IsZero() {
			t.Errorf("volumeClaimTemplate %s requests no storage", vc.Name)
		}
	}
	checkMounts(t, pod, c, claims, env)
	checkAntiAffinity(t, pod, sts.Spec.Template.Labels)
	checkSecurity(t, pod, c)
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container %s requests no cpu or memory: %v", c.Name, c.Resources.Requests)
	}
	checkShutdown(t, pod, env)

	// The node id is the pod's name; the advertised addresses its IP.
	podName, podIP := fieldVar(env, "metadata.name"), fieldVar(env, "status.podIP")
	if podName == "" || env["RINGKV_NODE_ID"] != "$("+podName+")" {
		t.Errorf("RINGKV_NODE_ID %q: want the pod name from the downward API", env["RINGKV_NODE_ID"])
	}
	for _, v := range []string{"RINGKV_ADVERTISE_HTTP_ADDR", "RINGKV_ADVERTISE_GOSSIP_ADDR"} {
		if podIP == "" || !strings.HasPrefix(env[v], "$("+podIP+"):") {
			t.Errorf("%s %q: want the pod IP from the downward API", v, env[v])
		}
	}
	// A brand-new cluster waits for as many pods as it will have; more
	// than the StatefulSet makes, and it never forms.
	if v := env["RINGKV_BOOTSTRAP_EXPECT"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || spec.Replicas == nil || n < 1 || n > int(*spec.Replicas) {
			t.Errorf("RINGKV_BOOTSTRAP_EXPECT %s with %v replicas: the first ring would never form", v, spec.Replicas)
		}
	}
	// --join names the headless Service, at the gossip port.
	if want := spec.ServiceName + ":" + portOf(t, env["RINGKV_GOSSIP_ADDR"]); env["RINGKV_JOIN"] != want {
		t.Errorf("RINGKV_JOIN %q, want %q (the headless Service at the gossip port)", env["RINGKV_JOIN"], want)
	}
}

// matches reports whether labels has every pair of sel.
func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// fieldVar returns the name of the env variable set from fieldPath.
func fieldVar(env map[string]string, fieldPath string) string {
	for k, v := range env {
		if v == "fieldRef:"+fieldPath {
			return k
		}
	}
	return ""
}

// portOf returns the port of HOST:PORT.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Errorf("address %q has no port", addr)
		return ""
	}
	return addr[i+1:]
}

// checkMounts: every mount is of a volume or claim, the data dir is a
// claim, and every *_FILE variable names a file under a Secret mount.
func checkMounts(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, claims map[string]bool, env map[string]string) {
	t.Helper()
	secrets := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = true
		}
	}
	mounts := map[string]string{} // path -> volume
	for _, m := range c.VolumeMounts {
		if !claims[m.Name] && !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("volumeMount %s: no such volume or claim", m.Name)
		}
		mounts[m.MountPath] = m.Name
	}
	if !claims[mounts[env["RINGKV_DATA_DIR"]]] {
		t.Errorf("RINGKV_DATA_DIR %q is not a volume claim's mount", env["RINGKV_DATA_DIR"])
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "RINGKV_") || !strings.HasSuffix(k, "_FILE") {
			continue
		}
		if !secrets[mounts[filepath.Dir(v)]] {
			t.Errorf("%s %q is not in a mounted Secret", k, v)
		}
	}
	for _, need := range []string{"RINGKV_CLUSTER_SECRET_FILE", "RINGKV_TLS_CERT_FILE", "RINGKV_TLS_KEY_FILE", "RINGKV_AUTH_FILE"} {
		if env[need] == "" {
			t.Errorf("the container does not set %s", need)
		}
	}
}

// checkAntiAffinity: no two pods on one host, required.
func checkAntiAffinity(t *testing.T, pod *corev1.PodSpec, labels map[string]string) {
	t.Helper()
	a := pod.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		t.Error("no pod anti-affinity")
		return
	}
	for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		if term.TopologyKey == "kubernetes.io/hostname" && term.LabelSelector != nil && matches(term.LabelSelector.MatchLabels, labels) {
			return
		}
	}
	t.Error("no required pod anti-affinity on kubernetes.io/hostname selecting the ringkv pods")
}

// checkSecurity: non-root, read-only root filesystem, no privilege.
func checkSecurity(t *testing.T, pod *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	ps, cs := pod.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Error("the pod does not run as a non-root numeric user (runAsNonRoot, runAsUser)")
	}
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
		t.Error("the container's root filesystem is not read-only")
	}
	if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		t.Error("the container allows privilege escalation")
	}
}

// checkShutdown: the grace period outlasts --shutdown-timeout, and a pod
// stop is not a leave.
func checkShutdown(t *testing.T, pod *corev1.PodSpec, env map[string]string) {
	t.Helper()
	st := 30 * time.Second // ringkv's default
	if v := env["RINGKV_SHUTDOWN_TIMEOUT"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RINGKV_SHUTDOWN_TIMEOUT %q: %v", v, err)
		}
		st = d
	}
	g := int64(30) // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		g = *pod.TerminationGracePeriodSeconds
	}
	if time.Duration(g)*time.Second < st+15*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d: want at least --shutdown-timeout %v and 15s to close the store", g, st)
	}
	if v := strings.ToLower(env["RINGKV_DRAIN"]); v != "" && v != "false" && v != "0" {
		t.Errorf("RINGKV_DRAIN %q: every pod stop would be a leave, and a rolling restart would move all the data", v)
	}
}

// TestServicesAndBudget: the Services reach named container ports, the
// headless one every port with not-ready pods, the PDB allows one down.
func TestServicesAndBudget(t *testing.T) {
	o := loadObjects(t)
	c := container(t, o.sts)
	labels := o.sts.Spec.Template.Labels
	ports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		ports[p.Name] = p
	}
	env := envOf(c)
	wantPort := map[string]string{
		"http": portOf(t, env["RINGKV_HTTP_ADDR"]), "gossip-tcp": portOf(t, env["RINGKV_GOSSIP_ADDR"]), "gossip-udp": portOf(t, env["RINGKV_GOSSIP_ADDR"]),
	}
	for name, want := range wantPort {
		if p, ok := ports[name]; !ok || fmt.Sprint(p.ContainerPort) != want {
			t.Errorf("container port %s: %+v, want port %s (from the RINGKV_*_ADDR it serves)", name, p, want)
		}
	}
	if ports["gossip-udp"].Protocol != corev1.ProtocolUDP {
		t.Error("gossip-udp is not UDP: memberlist gossips over UDP as well as TCP")
	}
	for name, s := range o.services {
		if !matches(s.Spec.Selector, labels) {
			t.Errorf("Service %s selects %v, not the ringkv pods %v", name, s.Spec.Selector, labels)
		}
		for _, sp := range s.Spec.Ports {
			cp, ok := ports[sp.TargetPort.String()]
			if !ok || cp.Protocol != sp.Protocol {
				t.Errorf("Service %s port %s: targetPort %s is no %s container port", name, sp.Name, sp.TargetPort.String(), sp.Protocol)
			}
		}
	}
	if hs := o.services[o.sts.Spec.ServiceName]; hs != nil && len(hs.Spec.Ports) != len(c.Ports) {
		t.Errorf("the headless Service has %d ports, the container %d: peers need them all", len(hs.Spec.Ports), len(c.Ports))
	}
	pdb := o.pdb
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels, labels) {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 over the ringkv pods, got %+v", pdb.Spec)
	}
}

// TestProbes: startup and liveness on /livez (which never touches the
// store), readiness on /healthz, all on the http port.
func TestProbes(t *testing.T) {
	c := container(t, loadObjects(t).sts)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/livez"},
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe of %s", p.name, p.path)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port.String() != "http" || g.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s: GET %s %s on port %s, want GET HTTPS %s on port http", p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
	}
	// A liveness probe must give a node busy for a while more than a
	// minute before it is killed.
	if l := c.LivenessProbe; l != nil && l.PeriodSeconds*l.FailureThreshold < 60 {
		t.Errorf("livenessProbe kills a node after %ds without an answer: too quick", l.PeriodSeconds*l.FailureThreshold)
	}
}

// TestManifestEnvAndFlags: every RINGKV_* variable the StatefulSet sets
// is a serve flag's.
func TestManifestEnvAndFlags(t *testing.T) {
	c := container(t, loadObjects(t).sts)
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	checkRingkvEnv(t, "the StatefulSet", names)
	if len(c.Command) != 0 || len(c.Args) != 0 {
		t.Errorf("the container overrides the image's entrypoint (%v %v): configure it with RINGKV_* variables", c.Command, c.Args)
	}
}

// expandPodEnv returns the container's env as a process environment,
// with the downward-API fields and $(VAR) references filled in, after
// replacing the values of some variables.
func expandPodEnv(c *corev1.Container, fields, replace map[string]string) []string {
	vals := map[string]string{}
	var out []string
	for _, e := range c.Env {
		v, ok := replace[e.Name]
		switch {
		case ok:
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = fields[e.ValueFrom.FieldRef.FieldPath]
		default:
			v = regexp.MustCompile(`\$\(([A-Z_][A-Z0-9_]*)\)`).ReplaceAllStringFunc(e.Value, func(ref string) string {
				return vals[ref[2:len(ref)-1]]
			})
		}
		vals[e.Name] = v
		if v != "" {
			out = append(out, e.Name+"="+v)
		}
	}
	return out
}

// podNode is a node run with the StatefulSet's environment, as pod
// ringkv-0 on loopback.
type podNode struct {
	*node
	c     *corev1.Container
	base  string // https://127.0.0.1:PORT
	token string // an admin token of its auth file
	id    string
}

// startPodNode runs a node with the StatefulSet's environment: the pod's
// fields and addresses on loopback, the Secrets' files made here, and
// the variables of replace changed (to "" to unset).
func startPodNode(t *testing.T, replace map[string]string) *podNode {
	t.Helper()
	sts := loadObjects(t).sts
	c := container(t, sts)
	env := envOf(c)
	dir := t.TempDir()
	id := sts.Name + "-0"
	token := writePodSecrets(t, dir, env, id)
	httpAddr, gossipAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	all := map[string]string{
		"RINGKV_DATA_DIR":              filepath.Join(dir, "data"),
		"RINGKV_HTTP_ADDR":             httpAddr,
		"RINGKV_GOSSIP_ADDR":           gossipAddr,
		"RINGKV_ADVERTISE_HTTP_ADDR":   httpAddr,
		"RINGKV_ADVERTISE_GOSSIP_ADDR": gossipAddr,
	}
	for k, v := range env {
		if strings.HasPrefix(k, "RINGKV_") && strings.HasSuffix(k, "_FILE") {
			all[k] = filepath.Join(dir, filepath.Base(filepath.Dir(v)), filepath.Base(v))
		}
	}
	for k, v := range replace {
		all[k] = v
	}
	fields := map[string]string{"metadata.name": id, "status.podIP": "127.0.0.1"}
	cmd := exec.Command(ringkvBinary(t), "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv(expandPodEnv(c, fields, all)...)
	return &podNode{node: startProcess(t, cmd), c: c, base: "https://" + httpAddr, token: token, id: id}
}

// TestManifestNodeAnswersProbes runs a node with the StatefulSet's
// environment and asks it every probe of the manifest, as kubelet would
// (HTTPS, the certificate not verified).
func TestManifestNodeAnswersProbes(t *testing.T) {
	// One node alone: there is no headless Service to join here, nor
	// others to wait for.
	n := startPodNode(t, map[string]string{"RINGKV_JOIN": "", "RINGKV_BOOTSTRAP_EXPECT": ""})
	c := n.c
	waitOK(t, n.node, n.base+c.ReadinessProbe.HTTPGet.Path)
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		code, body, err := get(n.base + p.HTTPGet.Path)
		if err != nil || code != 200 {
			t.Errorf("probe GET %s: %d %q %v, want 200", p.HTTPGet.Path, code, body, err)
		}
	}
	// The node took its id from the pod name, and its credentials.
	code, body, err := get(n.base+"/v1/cluster", "Authorization", "Bearer "+n.token)
	if err != nil || code != 200 || !strings.Contains(body, `"self":"`+n.id+`"`) {
		t.Errorf("GET /v1/cluster: %d %s %v, want node %s", code, body, err, n.id)
	}
	if err := n.stop(t); err != nil {
		t.Errorf("SIGTERM: %v, want a clean exit", err)
	}
}

// TestManifestNodeWaitingForPeers: a pod of a brand-new cluster whose
// peers are not up yet (its join target does not answer) waits, live but
// not ready: the startup and liveness probes pass, so it is not
// restarted while it waits, and the readiness probe keeps clients away.
func TestManifestNodeWaitingForPeers(t *testing.T) {
	nobody := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := startPodNode(t, map[string]string{"RINGKV_JOIN": nobody})
	c := n.c
	waitOK(t, n.node, n.base+c.StartupProbe.HTTPGet.Path)
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe} {
		if code, body, err := get(n.base + p.HTTPGet.Path); err != nil || code != 200 {
			t.Errorf("probe GET %s while waiting for peers: %d %q %v, want 200", p.HTTPGet.Path, code, body, err)
		}
	}
	code, body, err := get(n.base + c.ReadinessProbe.HTTPGet.Path)
	if err != nil || code != 503 || !strings.Contains(body, "not ready") {
		t.Errorf("readiness GET %s while waiting for peers: %d %q %v, want 503 not ready", c.ReadinessProbe.HTTPGet.Path, code, body, err)
	}
}

// writePodSecrets writes, under dir, the files the container's *_FILE
// variables name (dir/VOLUME/FILE): a cluster secret, a CA and a
// certificate naming node, an auth file. It returns the admin token.
func writePodSecrets(t *testing.T, dir string, env map[string]string, node string) string {
	t.Helper()
	ca, cert, key := makeCerts(t, node)
	token := "deploy-test-token"
	files := map[string][]byte{
		"RINGKV_CLUSTER_SECRET_FILE": []byte("0123456789abcdef0123456789abcdef\n"),
		"RINGKV_TLS_CERT_FILE":       cert,
		"RINGKV_TLS_KEY_FILE":        key,
		"RINGKV_PEER_CA_FILE":        ca,
		"RINGKV_AUTH_FILE":           []byte("admin " + sha256Hex(token) + "\n"),
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "RINGKV_") || !strings.HasSuffix(k, "_FILE") {
			continue
		}
		b, ok := files[k]
		if !ok {
			t.Fatalf("the container sets %s; this test does not know what to put in it", k)
		}
		p := filepath.Join(dir, filepath.Base(filepath.Dir(v)), filepath.Base(v))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return token
}
