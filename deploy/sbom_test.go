package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// make sbom writes one well-formed CycloneDX document per binary under
// cmd/, whose components are the modules linked into that binary at the
// versions go.mod selects.
func TestMakeSBOMWritesACycloneDXDocumentPerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and cyclonedx-gomod")
	}
	dir := t.TempDir()
	runMake(t, "sbom", "SBOM_DIR="+dir, "TAG=t-sbom")
	purl := regexp.MustCompile(`^pkg:golang/[^@]+@v\d+\.\d+\.\d+\S*$`)
	for _, app := range services(t) {
		t.Run(app, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, app+".cdx.json"))
			if err != nil {
				t.Fatal(err)
			}
			var bom struct {
				BOMFormat    string `json:"bomFormat"`
				SpecVersion  string `json:"specVersion"`
				SerialNumber string `json:"serialNumber"`
				Metadata     struct {
					Component struct {
						Name, Version, Type string
					} `json:"component"`
				} `json:"metadata"`
				Components []struct {
					Name, Version, Purl, Type string
					BOMRef                    string `json:"bom-ref"`
				} `json:"components"`
				Dependencies []struct {
					Ref string `json:"ref"`
				} `json:"dependencies"`
			}
			dec := json.NewDecoder(strings.NewReader(string(data)))
			if err := dec.Decode(&bom); err != nil {
				t.Fatalf("%s.cdx.json is not JSON: %v", app, err)
			}
			if bom.BOMFormat != "CycloneDX" || !regexp.MustCompile(`^1\.[4-9]$`).MatchString(bom.SpecVersion) ||
				!strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
				t.Errorf("bomFormat %q specVersion %q serialNumber %q, want CycloneDX 1.4+ with a urn:uuid", bom.BOMFormat, bom.SpecVersion, bom.SerialNumber)
			}
			if bom.Metadata.Component.Version != "t-sbom" || bom.Metadata.Component.Type != "application" {
				t.Errorf("metadata.component = %+v, want the application at version t-sbom", bom.Metadata.Component)
			}
			refs := map[string]bool{}
			versions := map[string]string{}
			for _, c := range bom.Components {
				if !purl.MatchString(c.Purl) || c.Version == "" || c.BOMRef == "" {
					t.Errorf("component %+v lacks a golang purl, version or bom-ref", c)
				}
				refs[c.BOMRef] = true
				versions[c.Name] = c.Version
			}
			for _, d := range bom.Dependencies {
				if !refs[d.Ref] && !strings.Contains(d.Ref, "hostkit") {
					t.Errorf("dependency %s names no component", d.Ref)
				}
			}
			// Both binaries link the NATS client, at go.mod's version.
			const natsGo = "github.com/nats-io/nats.go"
			if want := requiredVersion(t, ".", natsGo); versions[natsGo] != want {
				t.Errorf("%s %s = %q, want %s (go.mod)", app, natsGo, versions[natsGo], want)
			}
		})
	}
}
