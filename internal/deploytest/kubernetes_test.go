package deploytest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// k8sDir holds the Kubernetes manifests.
const k8sDir = "deploy/k8s"

// manifests are the decoded objects of deploy/k8s.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	secret     *corev1.Secret
	pdb        *policyv1.PodDisruptionBudget
	files      []string // the manifest files, kustomization.yaml aside
}

// kustomization is the part of kustomization.yaml this repository uses.
type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Resources  []string         `json:"resources"`
	Images     []kustomizeImage `json:"images"`
}

// kustomizeImage replaces an image name in the manifests.
type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---\s*$`)
	commentLine  = regexp.MustCompile(`(?m)^\s*#.*$`)
)

// splitYAML splits a multi-document YAML file at its "---" lines, and
// drops documents that hold only comments.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		if strings.TrimSpace(commentLine.ReplaceAllString(d, "")) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// k8sDecoder decodes manifests as the API server does, strictly: an
// unknown, misspelt (also in case) or duplicate field is an error.
var k8sDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}()

// loadManifests decodes every manifest strictly into its API type, and
// wants exactly one Deployment, Service, Secret and PodDisruptionBudget.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, k8sDir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	for _, p := range paths {
		name := filepath.Base(p)
		if name == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range splitYAML(b) {
			obj, gvk, err := k8sDecoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			dup := func() { t.Fatalf("%s: a second %s", name, gvk.Kind) }
			switch o := obj.(type) {
			case *appsv1.Deployment:
				if m.deployment != nil {
					dup()
				}
				m.deployment = o
			case *corev1.Service:
				if m.service != nil {
					dup()
				}
				m.service = o
			case *corev1.Secret:
				if m.secret != nil {
					dup()
				}
				m.secret = o
			case *policyv1.PodDisruptionBudget:
				if m.pdb != nil {
					dup()
				}
				m.pdb = o
			default:
				t.Fatalf("%s: unexpected %s", name, gvk)
			}
		}
	}
	if m.deployment == nil || m.service == nil || m.secret == nil || m.pdb == nil {
		t.Fatalf("%s lacks one of Deployment %v, Service %v, Secret %v, PodDisruptionBudget %v",
			k8sDir, m.deployment != nil, m.service != nil, m.secret != nil, m.pdb != nil)
	}
	return m
}

// container returns the Deployment's backend container.
func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the Deployment has %d containers; want the backend alone", len(cs))
	}
	return &cs[0]
}

// secretKeys returns the Secret's keys and values.
func (m *manifests) secretKeys() map[string]string {
	kv := map[string]string{}
	for k, v := range m.secret.Data {
		kv[k] = string(v)
	}
	for k, v := range m.secret.StringData {
		kv[k] = v
	}
	return kv
}

// podSelects reports whether sel selects the Deployment's pods.
func (m *manifests) podSelects(t *testing.T, sel *metav1.LabelSelector) bool {
	t.Helper()
	if sel == nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(m.deployment.Spec.Template.Labels))
}

// portOf resolves a probe's or a Service's port against the container's.
func portOf(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

func TestKustomization(t *testing.T) {
	m := loadManifests(t)
	b, err := os.ReadFile(filepath.Join(root, k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	got, want := slices.Sorted(slices.Values(k.Resources)), slices.Sorted(slices.Values(m.files))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml lists %v; the manifests are %v", got, want)
	}
	image, _, _ := strings.Cut(m.container(t).Image, ":")
	if !slices.ContainsFunc(k.Images, func(i kustomizeImage) bool { return i.Name == image }) {
		t.Errorf("kustomization.yaml's images do not name the Deployment's image %s", image)
	}
}

// environment returns the backend's environment in the Deployment, on top
// of the image's, with Secret keys read from the Secret (a missing key
// reads as unset), and the names the Deployment sets.
func (m *manifests) environment(t *testing.T) (env map[string]string, names map[string]bool) {
	t.Helper()
	keys := m.secretKeys()
	env, names = imageEnv(t, finalStage(t)), map[string]bool{}
	for _, e := range m.container(t).Env {
		names[e.Name] = true
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = keys[e.ValueFrom.SecretKeyRef.Key]
		}
	}
	return env, names
}

// mountOf returns the container's volume mount that holds p.
func mountOf(c *corev1.Container, p string) (corev1.VolumeMount, bool) {
	for _, vm := range c.VolumeMounts {
		if within(p, vm.MountPath) {
			return vm, true
		}
	}
	return corev1.VolumeMount{}, false
}

// TestKubernetesSelectors checks that the Deployment owns its pods and that
// the Service and the disruption budget select them.
func TestKubernetesSelectors(t *testing.T) {
	m := loadManifests(t)
	d, c := m.deployment, m.container(t)
	if !m.podSelects(t, d.Spec.Selector) {
		t.Errorf("the Deployment's selector %v does not select its pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	if !m.podSelects(t, &metav1.LabelSelector{MatchLabels: m.service.Spec.Selector}) {
		t.Errorf("the Service's selector %v does not select the pods %v", m.service.Spec.Selector, d.Spec.Template.Labels)
	}
	if !m.podSelects(t, m.pdb.Spec.Selector) {
		t.Errorf("the PodDisruptionBudget's selector %v does not select the pods %v", m.pdb.Spec.Selector, d.Spec.Template.Labels)
	}

	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas < 2 {
		t.Errorf("replicas = %d: with one, a disruption budget either blocks node drains or protects nothing", replicas)
	}
	switch b := m.pdb.Spec; {
	case b.MinAvailable != nil && b.MaxUnavailable != nil:
		t.Error("the PodDisruptionBudget sets both minAvailable and maxUnavailable")
	case b.MinAvailable != nil && b.MinAvailable.Type == intstr.Int && b.MinAvailable.IntVal >= replicas:
		t.Errorf("minAvailable %d with %d replicas blocks every node drain", b.MinAvailable.IntVal, replicas)
	case b.MaxUnavailable != nil && b.MaxUnavailable.Type == intstr.Int && b.MaxUnavailable.IntVal < 1:
		t.Error("maxUnavailable 0 blocks every node drain")
	case b.MinAvailable == nil && b.MaxUnavailable == nil:
		t.Error("the PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}

	if len(m.service.Spec.Ports) == 0 {
		t.Error("the Service has no ports")
	}
	env, _ := m.environment(t)
	for _, sp := range m.service.Spec.Ports {
		if cp, ok := portOf(c, sp.TargetPort); !ok {
			t.Errorf("the Service's port %d targets %s, which is no container port", sp.Port, sp.TargetPort.String())
		} else if strconv.Itoa(int(cp.ContainerPort)) != env["PORT"] {
			t.Errorf("the Service targets container port %d; the backend listens on PORT=%s", cp.ContainerPort, env["PORT"])
		} else if sp.Port != cp.ContainerPort {
			t.Errorf("the Service's port %d differs from the backend's %d: Label Studio users expect one port", sp.Port, cp.ContainerPort)
		}
	}
}

// TestKubernetesEnvironment checks that the Deployment sets only variables
// the backend reads, takes secrets from the Secret, and gives values the
// backend accepts; and that the Secret commits no credential.
func TestKubernetesEnvironment(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	keys := m.secretKeys()
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			switch e.Name {
			case "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN", "BASIC_AUTH_PASS", "ADMIN_TOKEN", "LABEL_STUDIO_DB_URL", "POSTGRE_PASSWORD":
				t.Errorf("%s is written into the Deployment; take it from the Secret", e.Name)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := keys[ref.Key]; ref.Name != m.secret.Name || !ok {
				t.Errorf("%s comes from Secret %s key %s, which %s does not have", e.Name, ref.Name, ref.Key, k8sDir)
			}
		default:
			t.Errorf("%s comes from %+v; this test knows literal values and Secret keys", e.Name, e.ValueFrom)
		}
	}
	for _, ef := range c.EnvFrom {
		t.Errorf("envFrom %+v hides which variables the backend gets; list them in env", ef)
	}
	env, names := m.environment(t)
	set := map[string]string{}
	for n := range names {
		set[n] = env[n]
	}
	checkEnvironment(t, "the Deployment", set, false)
	loadConfig(t, "the Deployment", env)

	for k, v := range keys {
		if v != "" && v != "{}" {
			t.Errorf("Secret key %s has a value; commit placeholders only", k)
		}
	}
}

// TestKubernetesVolumes checks that the models and the tokens file are
// mounted read-only where the settings point, and /tmp is writable.
func TestKubernetesVolumes(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	env, _ := m.environment(t)
	cfg := loadConfig(t, "the Deployment", env)
	volumes := map[string]corev1.Volume{}
	for _, v := range m.deployment.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("volumeMount %s names no volume", vm.Name)
		}
	}

	for name, p := range map[string]string{"SAM_ENCODER_PATH": cfg.EncoderPath, "SAM_DECODER_PATH": cfg.DecoderPath} {
		vm, ok := mountOf(c, p)
		switch {
		case p == "":
			t.Errorf("%s is unset: the Deployment would run the demo models", name)
		case !ok || !vm.ReadOnly:
			t.Errorf("%s=%s is not on a read-only volume mount", name, p)
		case volumes[vm.Name].PersistentVolumeClaim == nil || !volumes[vm.Name].PersistentVolumeClaim.ReadOnly:
			t.Errorf("%s's volume %s is not a read-only persistentVolumeClaim", name, vm.Name)
		}
	}

	if f := cfg.OrgTokensFile; f != "" {
		vm, ok := mountOf(c, f)
		var sv *corev1.SecretVolumeSource
		if ok {
			sv = volumes[vm.Name].Secret
		}
		switch {
		case sv == nil:
			t.Errorf("ORG_TOKENS_FILE=%s is not on a Secret volume", f)
		case vm.SubPath != "":
			t.Error("ORG_TOKENS_FILE's mount uses subPath, so an edited Secret never reaches the pod")
		case sv.SecretName != m.secret.Name:
			t.Errorf("ORG_TOKENS_FILE's volume is Secret %s, not %s", sv.SecretName, m.secret.Name)
		default:
			rel := strings.TrimPrefix(f, strings.TrimSuffix(vm.MountPath, "/")+"/")
			i := slices.IndexFunc(sv.Items, func(kp corev1.KeyToPath) bool { return kp.Path == rel })
			if i < 0 {
				t.Fatalf("ORG_TOKENS_FILE=%s is no item of Secret %s", f, sv.SecretName)
			}
			v, ok := m.secretKeys()[sv.Items[i].Key]
			var obj map[string]string
			if err := json.Unmarshal([]byte(v), &obj); !ok || err != nil {
				t.Errorf("Secret key %s, ORG_TOKENS_FILE, is missing (%v) or not a JSON object: %v", sv.Items[i].Key, !ok, err)
			}
		}
	}

	if vm, ok := mountOf(c, "/tmp"); !ok || vm.ReadOnly || volumes[vm.Name].EmptyDir == nil {
		t.Error("/tmp is not a writable emptyDir: SQLite's temporary files need it on a read-only root filesystem")
	}
}

// TestKubernetesProbes checks that the probes reach the HTTP port without
// credentials, that nothing runs a command (the image has no shell), and
// that a stopping pod has time to finish its predictions.
func TestKubernetesProbes(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	env, names := m.environment(t)
	port := loadConfig(t, "the Deployment", env).Port
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Fatalf("liveness probe %v, readiness probe %v: want both", c.LivenessProbe != nil, c.ReadinessProbe != nil)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil {
			continue
		}
		switch h := p.ProbeHandler; {
		case h.Exec != nil:
			t.Errorf("the %s probe runs a command; the image has no shell or tools", name)
		case h.TCPSocket != nil:
			if cp, ok := portOf(c, h.TCPSocket.Port); !ok || int(cp.ContainerPort) != port {
				t.Errorf("the %s probe checks port %s; the backend listens on %d", name, h.TCPSocket.Port.String(), port)
			}
		case h.HTTPGet != nil:
			if cp, ok := portOf(c, h.HTTPGet.Port); !ok || int(cp.ContainerPort) != port || h.HTTPGet.Path != "/health" {
				t.Errorf("the %s probe gets %s on port %s; want /health on %d", name, h.HTTPGet.Path, h.HTTPGet.Port.String(), port)
			}
			if names["BASIC_AUTH_PASS"] {
				t.Errorf("the %s probe gets /health, which answers 401 once BASIC_AUTH_PASS is set", name)
			}
		default:
			t.Errorf("the %s probe has no handler", name)
		}
	}

	var preStop time.Duration
	if h := c.Lifecycle; h != nil {
		for name, lh := range map[string]*corev1.LifecycleHandler{"preStop": h.PreStop, "postStart": h.PostStart} {
			if lh != nil && lh.Exec != nil {
				t.Errorf("the %s hook runs a command; the image has no shell or tools", name)
			}
		}
		if h.PreStop != nil && h.PreStop.Sleep != nil {
			preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
		}
	}
	grace := 30 * time.Second // Kubernetes' default
	if s := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	if bound := shutdownBound(t); grace <= preStop+bound {
		t.Errorf("terminationGracePeriodSeconds %v; want more than the %v preStop pause and the backend's %v shutdown bound", grace, preStop, bound)
	}
}

// TestKubernetesResources checks that CPU and memory are requested, and
// that ONNX Runtime's threads fit the CPU request.
func TestKubernetesResources(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	env, _ := m.environment(t)
	cfg := loadConfig(t, "the Deployment", env)
	cpu, mem := c.Resources.Requests[corev1.ResourceCPU], c.Resources.Requests[corev1.ResourceMemory]
	if cpu.IsZero() || mem.IsZero() {
		t.Errorf("resource requests %v; want cpu and memory", c.Resources.Requests)
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(mem) < 0 {
		t.Errorf("memory limit %s is below the request %s", lim.String(), mem.String())
	}
	if cfg.Threads == 0 || int64(cfg.Threads) > cpu.Value() {
		t.Errorf("SAM_THREADS = %d with a CPU request of %s: ONNX Runtime counts the node's cores, so set it to at most the request", cfg.Threads, cpu.String())
	}
}

// TestKubernetesSecurity checks that the backend runs as the image's
// non-root user on a read-only root filesystem, with no privileges.
func TestKubernetesSecurity(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	uid, gid := imageUser(t, loadDockerfile(t))
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("the container has no securityContext")
	}
	psc := m.deployment.Spec.Template.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	nonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("runAsNonRoot is not true")
	}
	runAs := psc.RunAsUser
	if sc.RunAsUser != nil {
		runAs = sc.RunAsUser
	}
	if runAs == nil || *runAs != uid {
		t.Errorf("runAsUser %s; want the image's user %d", show(runAs), uid)
	}
	runGroup := psc.RunAsGroup
	if sc.RunAsGroup != nil {
		runGroup = sc.RunAsGroup
	}
	if runGroup != nil && *runGroup != gid {
		t.Errorf("runAsGroup %d; want the image's group %d", *runGroup, gid)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v; want drop ALL and add none", sc.Capabilities)
	}
}

// show prints an optional number.
func show(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

func TestSplitYAML(t *testing.T) {
	docs := splitYAML([]byte("# head\n---\na: 1\n---\n# only a comment\n---\nb: 2\n"))
	if len(docs) != 2 || !bytes.Contains(docs[0], []byte("a: 1")) || !bytes.Contains(docs[1], []byte("b: 2")) {
		t.Errorf("splitYAML = %q; want the two documents", docs)
	}
}
