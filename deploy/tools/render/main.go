// Command render builds a kustomization the way `kubectl apply -k` would and
// prints the resources as one JSON array. It exists so that tests outside
// this module (docs' guide test) can read the rendered manifests without the
// root module depending on kustomize:
//
//	go -C deploy run ./tools/render manifests/overlays/kind
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: render KUSTOMIZATION_DIR")
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), args[0])
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", args[0], err)
	}
	objs := make([]map[string]any, 0, resMap.Size())
	for _, res := range resMap.Resources() {
		m, err := res.Map()
		if err != nil {
			return fmt.Errorf("%s %s: %w", res.GetKind(), res.GetName(), err)
		}
		objs = append(objs, m)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(objs)
}
