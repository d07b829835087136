// check - decode deploy/kubernetes/*.yaml strictly into the Kubernetes API's
// own Go types (k8s.io/api: an unknown or misspelt field, a wrong type or a
// duplicate key fails, as the API server's strict field validation would),
// then check what ctkn's deployment needs of them:
//
//   - a StatefulSet running `ctkn serve`, with a readiness probe on
//     /healthz and a volume claim of its own mounted at CTKN_DB's directory;
//   - a Deployment of two or more `ctkn notify --follow --group NAME`;
//   - a Job running `ctkn init`;
//   - every container: the same image, not root, no privilege escalation,
//     the ctkn ConfigMap in its environment, and every volume it mounts
//     declared;
//   - trust (there is no unsigned mode): every container whose ctkn
//     command reads the log has CTKN_TRUST_ROOT (or --trust-root) on a
//     mounted volume, every one that appends (notify among them) also
//     CTKN_WRITER_KEY (or --writer-key); a signing or deployment key is
//     never read straight from a Secret or ConfigMap volume (its files are
//     root's, group readable under fsGroup, and ctkn refuses a key file
//     with any group or other bit) but from an emptyDir an init container
//     fills; no root key anywhere; and at least one serve holds a writer
//     key, so that something heartbeats and replicas do not go stale.
//
// Usage: go run . FILE...   (deploy/kubernetes/verify runs it)
package main

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var failures int

// Whether some serve container holds a writer key (it heartbeats).
var heartbeats bool

func fail(format string, a ...any) {
	failures++
	fmt.Printf("FAIL "+format+"\n", a...)
}

type meta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Every container must be ctkn's, locked down, configured from the
// ConfigMap, and mount only declared volumes.
func checkPod(where string, spec *corev1.PodSpec, images map[string]bool) {
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
	}
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		fail("%s: the pod must set runAsNonRoot", where)
	}
	for _, c := range spec.InitContainers {
		images[c.Image] = true
		csc := c.SecurityContext
		if csc == nil || csc.AllowPrivilegeEscalation == nil ||
			*csc.AllowPrivilegeEscalation {
			fail("%s/%s: allowPrivilegeEscalation must be false", where, c.Name)
		}
	}
	for _, c := range spec.Containers {
		images[c.Image] = true
		checkTrust(where, spec, c)
		csc := c.SecurityContext
		if csc == nil || csc.AllowPrivilegeEscalation == nil ||
			*csc.AllowPrivilegeEscalation {
			fail("%s/%s: allowPrivilegeEscalation must be false", where, c.Name)
		}
		fromConfig := false
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil && e.ConfigMapRef.Name == "ctkn" {
				fromConfig = true
			}
		}
		if !fromConfig {
			fail("%s/%s: no envFrom the ctkn ConfigMap", where, c.Name)
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] && !strings.HasPrefix(where, "StatefulSet") {
				fail("%s/%s: mounts undeclared volume %s", where, c.Name, m.Name)
			}
		}
	}
}

// What a ctkn command line needs of trust: reads (the log, judged by the
// trust root) and appends (signed with a writer key). README.md,
// "Configuration": --trust-root and --writer-key.
func trustNeeds(args []string) (reads, appends bool) {
	if len(args) == 0 {
		return false, false
	}
	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	switch args[0] {
	case "project", "rebuild", "replay", "audit", "tail", "serve":
		return true, false
	case "notify", "create", "update", "revoke":
		return true, true
	case "notification":
		return true, sub == "replay"
	case "destination":
		w := sub == "add" || sub == "update" || sub == "remove"
		return w, w
	case "apikey":
		if slices.Contains(args, "--file") { // the offline key file
			return false, false
		}
		return true, sub != "list" && sub != "get"
	}
	return false, false
}

// The value of a ctkn option, from its flag or else its variable.
func option(c corev1.Container, flag, variable string) string {
	if i := slices.Index(c.Args, flag); i >= 0 && i+1 < len(c.Args) {
		return c.Args[i+1]
	}
	return env(c, variable)
}

// The volume a file path of the container lies on, or nil.
func volumeOf(spec *corev1.PodSpec, c corev1.Container, file string) *corev1.Volume {
	best := ""
	for _, m := range c.VolumeMounts {
		dir := path.Clean(m.MountPath)
		if strings.HasPrefix(path.Clean(file), dir+"/") && len(dir) > len(best) {
			best = m.Name
		}
	}
	for i := range spec.Volumes {
		if best != "" && spec.Volumes[i].Name == best {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// A key ctkn reads with private_mode (any group or other bit refused)
// must be on an emptyDir that an init container fills: a Secret volume's
// files are root's, and group readable once the pod has an fsGroup.
func checkPrivateKey(where string, spec *corev1.PodSpec, c corev1.Container,
	what, file string) {
	v := volumeOf(spec, c, file)
	switch {
	case v == nil:
		fail("%s/%s: %s %s is on no mounted volume", where, c.Name, what, file)
	case v.EmptyDir == nil:
		fail("%s/%s: %s %s is read from volume %s, not from an emptyDir an "+
			"init container fills: ctkn refuses a key file that is not the "+
			"process's own with mode 0400 or 0600", where, c.Name, what, file, v.Name)
	default:
		filled := false
		for _, ic := range spec.InitContainers {
			for _, m := range ic.VolumeMounts {
				if m.Name == v.Name && !m.ReadOnly {
					filled = true
				}
			}
		}
		if !filled {
			fail("%s/%s: %s %s: no init container writes volume %s", where,
				c.Name, what, file, v.Name)
		}
	}
}

func checkTrust(where string, spec *corev1.PodSpec, c corev1.Container) {
	if slices.Contains(c.Args, "--root-key") || env(c, "CTKN_ROOT_KEY") != "" {
		fail("%s/%s: the root key stays offline; no workload gets it", where, c.Name)
	}
	reads, appends := trustNeeds(c.Args)
	if reads {
		root := option(c, "--trust-root", "CTKN_TRUST_ROOT")
		if root == "" {
			fail("%s/%s: ctkn %s reads the log: it needs CTKN_TRUST_ROOT "+
				"(there is no unsigned mode; exit 2)", where, c.Name, c.Args[0])
		} else if volumeOf(spec, c, root) == nil {
			fail("%s/%s: CTKN_TRUST_ROOT %s is on no mounted volume", where,
				c.Name, root)
		}
	}
	key := option(c, "--writer-key", "CTKN_WRITER_KEY")
	if appends && key == "" {
		fail("%s/%s: ctkn %s appends: it needs CTKN_WRITER_KEY "+
			"(there is no unsigned mode; exit 2)", where, c.Name, c.Args[0])
	}
	if key != "" {
		checkPrivateKey(where, spec, c, "writer key", key)
		if len(c.Args) > 0 && c.Args[0] == "serve" {
			heartbeats = true
		}
	}
	for _, o := range [][2]string{{"--secret-key-file", "CTKN_SECRET_KEY_FILE"},
		{"--usage-key", "CTKN_USAGE_KEY"}, {"--expiry-key", "CTKN_EXPIRY_KEY"}} {
		if f := option(c, o[0], o[1]); f != "" {
			checkPrivateKey(where, spec, c, o[0][2:], f)
		}
	}
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func checkStatefulSet(s *appsv1.StatefulSet, images map[string]bool) bool {
	where := "StatefulSet " + s.Name
	checkPod(where, &s.Spec.Template.Spec, images)
	claims := map[string]bool{}
	for _, t := range s.Spec.VolumeClaimTemplates {
		claims[t.Name] = true
	}
	for _, v := range s.Spec.Template.Spec.Volumes {
		claims[v.Name] = true // declared either way
	}
	for _, c := range s.Spec.Template.Spec.Containers {
		if len(c.Args) == 0 || c.Args[0] != "serve" {
			continue
		}
		p := c.ReadinessProbe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			fail("%s: serve needs a readiness probe on GET /healthz", where)
		}
		db, own := env(c, "CTKN_DB"), false
		for _, m := range c.VolumeMounts {
			if !claims[m.Name] {
				fail("%s: mounts undeclared volume %s", where, m.Name)
			}
			isClaim := slices.ContainsFunc(s.Spec.VolumeClaimTemplates,
				func(t corev1.PersistentVolumeClaim) bool { return t.Name == m.Name })
			if isClaim && db != "" && path.Dir(db) == path.Clean(m.MountPath) {
				own = true
			}
		}
		if !own {
			fail("%s: CTKN_DB (%q) is not on a volume claim of its own", where, db)
		}
		return true
	}
	fail("%s: no container runs ctkn serve", where)
	return false
}

func checkDeployment(d *appsv1.Deployment, images map[string]bool) bool {
	where := "Deployment " + d.Name
	checkPod(where, &d.Spec.Template.Spec, images)
	for _, c := range d.Spec.Template.Spec.Containers {
		if len(c.Args) == 0 || c.Args[0] != "notify" {
			continue
		}
		i := slices.Index(c.Args, "--group")
		if i < 0 || i+1 >= len(c.Args) || c.Args[i+1] == "" {
			fail("%s: notify must name its group (--group NAME)", where)
		}
		if !slices.Contains(c.Args, "--follow") {
			fail("%s: notify must --follow", where)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			fail("%s: a group of one notifier shares nothing", where)
		}
		return true
	}
	fail("%s: no container runs ctkn notify", where)
	return false
}

func checkJob(j *batchv1.Job, images map[string]bool) bool {
	where := "Job " + j.Name
	checkPod(where, &j.Spec.Template.Spec, images)
	for _, c := range j.Spec.Template.Spec.Containers {
		if len(c.Args) > 0 && c.Args[0] == "init" {
			return true
		}
	}
	fail("%s: no container runs ctkn init", where)
	return false
}

// decode one document strictly into the type its kind names; returns which
// of the required workloads it is.
func decode(file string, doc []byte, images map[string]bool) string {
	var m meta
	if err := yaml.Unmarshal(doc, &m); err != nil {
		fail("%s: %v", file, err)
		return ""
	}
	var obj any
	switch m.APIVersion + " " + m.Kind {
	case "apps/v1 StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "batch/v1 Job":
		obj = &batchv1.Job{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	default:
		fail("%s: unexpected %s %s", file, m.APIVersion, m.Kind)
		return ""
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		fail("%s: %s: %v", file, m.Kind, err)
		return ""
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		if checkStatefulSet(o, images) {
			return "serve"
		}
	case *appsv1.Deployment:
		if checkDeployment(o, images) {
			return "notify"
		}
	case *batchv1.Job:
		if checkJob(o, images) {
			return "init"
		}
	case *corev1.ConfigMap:
		for _, k := range []string{"CTKN_BROKERS", "CTKN_TOPIC"} {
			if o.Data[k] == "" {
				fail("%s: ConfigMap %s lacks %s", file, o.Name, k)
			}
		}
	}
	return ""
}

func main() {
	sep := regexp.MustCompile(`(?m)^---\s*$`)
	images := map[string]bool{}
	found := map[string]bool{}
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fail("%v", err)
			continue
		}
		for _, doc := range sep.Split(string(data), -1) {
			if len(bytes.TrimSpace([]byte(doc))) == 0 {
				continue
			}
			if w := decode(file, []byte(doc), images); w != "" {
				found[w] = true
			}
		}
	}
	for _, w := range []string{"serve", "notify", "init"} {
		if !found[w] {
			fail("no workload runs ctkn %s", w)
		}
	}
	if found["serve"] && !heartbeats {
		fail("no serve holds a writer key: nothing heartbeats, and every " +
			"replica goes stale after --max-staleness (60 s)")
	}
	if len(images) != 1 {
		fail("the containers use %d images; one ctkn image expected", len(images))
	}
	if failures > 0 {
		os.Exit(1)
	}
	fmt.Printf("ok   %d files: serve, notify and init workloads decode strictly and hold, with their trust root and keys\n",
		len(os.Args)-1)
}
