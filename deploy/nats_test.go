package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
)

// The ConfigMap's nats.conf is parsed by nats-server's own configuration
// loader, so a typo or an invalid value fails here rather than in a
// crash-looping pod, and its ports and paths are checked against the
// StatefulSet and Services.
func TestNATSClusterConfigMatchesTheStatefulSet(t *testing.T) {
	objs, _ := deployed(t)
	sts := objs.statefulSets["nats"]
	spec := &sts.Spec.Template.Spec
	c := container(t, spec, "nats")

	// The server reads the ConfigMap's key from the config volume.
	i := slices.Index(c.Command, "--config")
	if i < 0 || i+1 >= len(c.Command) {
		t.Fatalf("command = %v, want --config FILE", c.Command)
	}
	if conf := c.Command[i+1]; filepath.Dir(conf) != mountPath(t, c, "config") || filepath.Base(conf) != "nats.conf" {
		t.Errorf("--config %s is not nats.conf on the config volume", conf)
	}
	opts := loadNATSConfig(t, objs, "nats-0")
	if opts.ServerName != "nats-0" {
		t.Errorf("server_name = %q, want the pod name (from $POD_NAME)", opts.ServerName)
	}
	if fieldRef(c, "POD_NAME") != "metadata.name" {
		t.Errorf("POD_NAME does not come from metadata.name")
	}
	if !opts.JetStream {
		t.Fatal("JetStream is not enabled")
	}
	for name, port := range map[string]int{"client": opts.Port, "cluster": opts.Cluster.Port, "monitor": opts.HTTPPort} {
		if got := containerPort(t, c, name); int(got) != port {
			t.Errorf("container port %s = %d, nats.conf listens on %d", name, got, port)
		}
	}
	if opts.Port != 4222 {
		t.Errorf("client port = %d, want 4222 (the apps' default NATS port)", opts.Port)
	}

	// The store lives on the pod's PersistentVolume.
	data := mountPath(t, c, "data")
	if !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == "data" }) {
		t.Errorf("no volumeClaimTemplate named data")
	}
	if !strings.HasPrefix(opts.StoreDir, data+"/") && opts.StoreDir != data {
		t.Errorf("jetstream store_dir = %q, want it on the data volume at %s", opts.StoreDir, data)
	}

	// Routes: one per pod, by its DNS name under the headless Service.
	if opts.Cluster.Name == "" {
		t.Errorf("cluster has no name")
	}
	var routes []string
	for _, u := range opts.Routes {
		routes = append(routes, u.Host)
		// Each route presents the credentials the cluster port requires.
		pw, _ := u.User.Password()
		if opts.Cluster.Username == "" || u.User.Username() != opts.Cluster.Username || pw != opts.Cluster.Password {
			t.Errorf("route %s authenticates as %q, want the cluster authorization user %q and its password", u.Host, u.User.Username(), opts.Cluster.Username)
		}
	}
	var want []string
	for i := range int(*sts.Spec.Replicas) {
		want = append(want, fmt.Sprintf("nats-%d.%s:%d", i, sts.Spec.ServiceName, opts.Cluster.Port))
	}
	if !slices.Equal(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	if _, ok := objs.services[sts.Spec.ServiceName]; !ok {
		t.Errorf("serviceName %q is not a Service", sts.Spec.ServiceName)
	}
	if *sts.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", *sts.Spec.Replicas)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy = %q, want Parallel: a server waits for its peers", sts.Spec.PodManagementPolicy)
	}

	// Lame duck: preStop signals the pid file; the grace period covers it.
	pre := c.Lifecycle
	if pre == nil || pre.PreStop == nil || pre.PreStop.Exec == nil ||
		!slices.Contains(pre.PreStop.Exec.Command, "ldm="+opts.PidFile) {
		t.Errorf("preStop = %+v, want nats-server --signal ldm=%s", pre, opts.PidFile)
	}
	if run := mountPath(t, c, "run"); filepath.Dir(opts.PidFile) != run {
		t.Errorf("pid_file %s is not on the writable run volume %s", opts.PidFile, run)
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if need := opts.LameDuckGracePeriod + opts.LameDuckDuration + shutdownMargin; grace < need {
		t.Errorf("terminationGracePeriodSeconds = %s, want >= lame duck grace %s + duration %s + margin %s",
			grace, opts.LameDuckGracePeriod, opts.LameDuckDuration, shutdownMargin)
	}
}

// loadNATSConfig writes the ConfigMap's nats.conf to a file and loads it the
// way nats-server does, with the environment the kubelet would give pod
// podName's nats container (downward API, the Secret, $(VAR) expansion).
func loadNATSConfig(t *testing.T, objs *objects, podName string) *server.Options {
	t.Helper()
	path := writeNATSConfig(t, objs, podName)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}
	return opts
}

// writeNATSConfig writes nats.conf to a temporary file and sets the nats
// container's environment for podName in the test's process.
func writeNATSConfig(t *testing.T, objs *objects, podName string) string {
	t.Helper()
	cm, ok := objs.configMaps["nats-config"]
	if !ok {
		t.Fatal("no ConfigMap nats-config")
	}
	conf, ok := cm.Data["nats.conf"]
	if !ok {
		t.Fatal("ConfigMap nats-config has no nats.conf")
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c := container(t, &objs.statefulSets["nats"].Spec.Template.Spec, "nats")
	for name, value := range kubeletEnv(t, objs, c, podName) {
		t.Setenv(name, value)
	}
	return path
}

// kubeletEnv is the environment the kubelet gives c in pod podName: literal
// values with $(VAR) expanded from the variables before them, the pod name
// from the downward API, and Secret keys from the overlay's Secrets.
func kubeletEnv(t *testing.T, objs *objects, c *corev1.Container, podName string) map[string]string {
	t.Helper()
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		v := ref.ReplaceAllStringFunc(e.Value, func(m string) string {
			if x, ok := env[m[2:len(m)-1]]; ok {
				return x
			}
			return m // the kubelet leaves an unknown reference as it is
		})
		if src := e.ValueFrom; src != nil {
			switch {
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.name":
				v = podName
			case src.SecretKeyRef != nil:
				sec, ok := objs.secrets[src.SecretKeyRef.Name]
				if !ok {
					t.Fatalf("env %s: no Secret %s in the overlay", e.Name, src.SecretKeyRef.Name)
				}
				data, ok := sec.Data[src.SecretKeyRef.Key]
				if !ok {
					t.Fatalf("env %s: Secret %s has no key %s", e.Name, sec.Name, src.SecretKeyRef.Key)
				}
				v = string(data)
			case src.ResourceFieldRef != nil:
				v = resourceValue(t, c, src.ResourceFieldRef)
			default:
				t.Fatalf("env %s: source %+v not simulated by this test", e.Name, src)
			}
		}
		env[e.Name] = v
	}
	return env
}
