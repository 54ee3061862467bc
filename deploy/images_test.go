package deploy_test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// imageRef splits an image reference into name, tag and digest.
var imageRef = regexp.MustCompile(`^([a-z0-9][a-z0-9._/-]*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$`)

// checkImage fails for a reference without tag and digest (which means
// :latest) or with the latest tag.
func checkImage(t *testing.T, where, image string) (name, tag, digest string) {
	t.Helper()
	m := imageRef.FindStringSubmatch(image)
	if m == nil {
		t.Errorf("%s: image %q is not a well-formed reference", where, image)
		return "", "", ""
	}
	if m[2] == "" && m[3] == "" {
		t.Errorf("%s: image %q has neither tag nor digest: it means :latest", where, image)
	}
	if m[2] == "latest" {
		t.Errorf("%s: image %q is tagged latest", where, image)
	}
	return m[1], m[2], m[3]
}

func allContainers(objs *objects) map[string]corev1.Container {
	out := map[string]corev1.Container{}
	for id, spec := range objs.podSpecs() {
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			out[id+"/"+c.Name] = c
		}
	}
	return out
}

// No manifest pulls an implicit :latest: the base names a tag no build has
// for the services (the overlay sets the real one), and what `make deploy`
// applies uses only the images it loaded into kind, never pulled.
func TestImagesAreExplicitAndTheKindOnesNeverPulled(t *testing.T) {
	base := render(t, "deploy/manifests/base")
	for id, c := range allContainers(base) {
		checkImage(t, "base "+id, c.Image)
	}
	objs, _ := deployed(t)
	natsVersion := requiredVersion(t, ".", "github.com/nats-io/nats-server/v2")
	want := map[string]string{
		// The server the tests run (go.mod), built by make image-nats.
		"StatefulSet/nats/nats": "localhost/nats-server:" + natsVersion,
	}
	// Every service under cmd/ (the guide adds one), at the tag deploy sets.
	for _, app := range services(t) {
		want["Deployment/"+app+"/"+app] = "hostkit/" + app + ":test"
	}
	got := allContainers(objs)
	if len(got) != len(want) {
		t.Errorf("containers %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for id, c := range got {
		checkImage(t, id, c.Image)
		if c.Image != want[id] {
			t.Errorf("%s image = %q, want %q", id, c.Image, want[id])
		}
		if c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("%s imagePullPolicy = %q, want Never: the image exists only in the kind nodes", id, c.ImagePullPolicy)
		}
	}
	// make kind-load loads exactly the NATS image the manifest names.
	if built := makeVar(t, "NATS_IMAGE") + ":" + makeVar(t, "NATS_VERSION"); built != want["StatefulSet/nats/nats"] {
		t.Errorf("make builds %s, the manifest runs %s", built, want["StatefulSet/nats/nats"])
	}
}

// Third-party base images are pinned by digest. The one exception is the
// Go builder image, whose digest for the current toolchain could not be
// looked up when it was set (see the Dockerfile): it is named here so that
// it is not forgotten and no other joins it.
func TestDockerfileBaseImagesArePinnedByDigest(t *testing.T) {
	args := map[string]string{}
	stages := map[string]bool{}
	unpinned := []string{}
	for _, line := range strings.Split(string(readFile(t, "Dockerfile"))+"\n"+string(readFile(t, "deploy/image/nats.Dockerfile")), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "ARG" {
			if name, value, ok := strings.Cut(f[1], "="); ok {
				args[name] = os.Expand(value, func(k string) string { return args[k] })
			}
		}
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		from := f[1]
		if strings.HasPrefix(from, "--platform") {
			from = f[2]
		}
		image := os.Expand(from, func(k string) string { return args[k] })
		if i := slices.Index(f, "AS"); i > 0 && i+1 < len(f) {
			stages[f[i+1]] = true
		}
		if image == "scratch" || stages[image] {
			continue // no image, or an earlier stage
		}
		_, _, digest := checkImage(t, "Dockerfile FROM "+from, image)
		if digest == "" {
			unpinned = append(unpinned, image)
		}
	}
	if !slices.Equal(unpinned, []string{"golang:" + args["GO_VERSION"] + "-bookworm"}) {
		t.Errorf("base images without a digest: %v, want only the Go builder (golang:%s-bookworm)", unpinned, args["GO_VERSION"])
	}
}

// Dependabot keeps every kind of pin moving: both Go modules, the
// Dockerfile's base images and the workflow's actions.
func TestDependabotCoversEveryPin(t *testing.T) {
	var cfg struct {
		Version int `json:"version"`
		Updates []struct {
			Ecosystem string         `json:"package-ecosystem"`
			Directory string         `json:"directory"`
			Schedule  map[string]any `json:"schedule"`
			Groups    map[string]any `json:"groups"`
		} `json:"updates"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, ".github/dependabot.yml"), &cfg); err != nil {
		t.Fatalf(".github/dependabot.yml: %v", err)
	}
	var got []string
	for _, u := range cfg.Updates {
		if u.Schedule["interval"] == nil {
			t.Errorf("%s %s has no schedule interval", u.Ecosystem, u.Directory)
		}
		got = append(got, u.Ecosystem+" "+u.Directory)
	}
	want := []string{"docker /", "github-actions /", "gomod /", "gomod /deploy"}
	if slices.Sort(got); cfg.Version != 2 || !slices.Equal(got, want) {
		t.Errorf("dependabot version %d updates %v, want version 2 and %v", cfg.Version, got, want)
	}
}
