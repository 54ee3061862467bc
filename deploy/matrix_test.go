package deploy_test

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// matrix reads deploy/README.md's "Version matrix" table: component -> the
// pinned value (the first `code` span of the second column) and the whole
// row, for the columns that list what it was tested with.
func matrix(t *testing.T) map[string][]string {
	t.Helper()
	readme := string(readFile(t, "deploy/README.md"))
	_, section, ok := strings.Cut(readme, "\n## Version matrix\n")
	if !ok {
		t.Fatal(`deploy/README.md has no "## Version matrix" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[cells[0]] = cells
	}
	return rows
}

// pin is the first `code` span of a matrix row's second column.
func pin(t *testing.T, rows map[string][]string, component string) string {
	t.Helper()
	row, ok := rows[component]
	if !ok || len(row) < 5 {
		t.Fatalf("version matrix has no full row %q (rows: %v)", component, rows)
	}
	m := regexp.MustCompile("`([^`]+)`").FindStringSubmatch(row[1])
	if m == nil {
		t.Fatalf("version matrix row %q pins nothing in `code`: %q", component, row[1])
	}
	if !strings.Contains(row[4], "https://") {
		t.Errorf("version matrix row %q gives no source link: %q", component, row[4])
	}
	return m[1]
}

// requiredVersion is the version go.mod in dir (relative to the root)
// requires of module path.
func requiredVersion(t *testing.T, dir, path string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path)
	cmd.Dir = root + "/" + dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s in %s: %v", path, dir, err)
	}
	return strings.TrimSpace(string(out))
}

// The pins the cluster is built from agree with the table that says why
// they were chosen: the node image, the Gateway API CRD bundle and the
// controller, and the kind and NATS versions.
func TestVersionMatrixMatchesThePins(t *testing.T) {
	rows := matrix(t)

	kind := pin(t, rows, "kind")
	if got := requiredVersion(t, "deploy", "sigs.k8s.io/kind"); got != kind {
		t.Errorf("deploy/go.mod has kind %s, the matrix %s", got, kind)
	}

	node := pin(t, rows, "kind node image")
	m := regexp.MustCompile(`^kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}$`).FindStringSubmatch(node)
	if m == nil {
		t.Fatalf("matrix node image %q is not kindest/node:vX.Y.Z@sha256:DIGEST", node)
	}
	for i, n := range kindCluster(t).Nodes {
		if n.Image != node {
			t.Errorf("cluster.yaml node %d image %q, the matrix pins %q", i, n.Image, node)
		}
	}
	if !strings.Contains(rows["kind"][3], strings.TrimPrefix(strings.Split(node, "@")[0], "kindest/node:")) {
		t.Errorf("the matrix does not list node image %s among kind %s's images (%q)", node, kind, rows["kind"][3])
	}

	eg := pin(t, rows, "Envoy Gateway")
	if got := makeVar(t, "ENVOY_GATEWAY_VERSION"); got != eg {
		t.Errorf("Makefile ENVOY_GATEWAY_VERSION = %s, the matrix %s", got, eg)
	}
	if got := requiredVersion(t, "deploy", "github.com/envoyproxy/gateway"); got != eg {
		t.Errorf("deploy/go.mod decodes with Envoy Gateway %s, the matrix pins %s", got, eg)
	}
	// The node's Kubernetes minor is one Envoy Gateway is tested on.
	tested := regexp.MustCompile(`Kubernetes ((?:1\.\d+(?:, )?)+)`).FindStringSubmatch(rows["Envoy Gateway"][3])
	if tested == nil {
		t.Fatalf("matrix row Envoy Gateway names no Kubernetes versions: %q", rows["Envoy Gateway"][3])
	}
	if !slices.Contains(strings.Split(tested[1], ", "), "1."+m[1]) {
		t.Errorf("node image Kubernetes 1.%s is not among Envoy Gateway %s's tested versions %s", m[1], eg, tested[1])
	}

	crds := pin(t, rows, "Gateway API CRDs")
	if got := makeVar(t, "GATEWAY_API_VERSION"); got != crds {
		t.Errorf("Makefile GATEWAY_API_VERSION = %s, the matrix %s", got, crds)
	}
	if got := requiredVersion(t, "deploy", "sigs.k8s.io/gateway-api"); got != crds {
		t.Errorf("deploy/go.mod decodes with Gateway API %s, the matrix pins %s", got, crds)
	}
	if !strings.HasPrefix(makeVar(t, "ENVOY_GATEWAY_MANIFEST"), "https://github.com/envoyproxy/gateway/releases/download/"+eg+"/") {
		t.Errorf("ENVOY_GATEWAY_MANIFEST = %s, want the %s release's", makeVar(t, "ENVOY_GATEWAY_MANIFEST"), eg)
	}

	nats := pin(t, rows, "NATS server")
	if got := requiredVersion(t, ".", "github.com/nats-io/nats-server/v2"); got != nats {
		t.Errorf("go.mod has nats-server %s, the matrix %s", got, nats)
	}
}

// makeVar is the value make gives variable name in the root Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	out := runMake(t, "-s", "--eval", "print-var: ; @echo $("+name+")", "print-var")
	return strings.TrimSpace(out)
}
