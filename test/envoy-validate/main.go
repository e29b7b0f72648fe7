// envoy-validate reads proxy configuration the way the proxy does and refuses what it would
// refuse, so the examples in this repository are proven, not just parsed as YAML.
//
//	envoy-validate bootstrap FILE...    an Envoy bootstrap (envoy -c FILE)
//	envoy-validate istio-mesh FILE...   an IstioOperator's spec.meshConfig, or a bare MeshConfig
//
// Each YAML file becomes JSON and is read with protojson into the real generated type
// (envoy.config.bootstrap.v3.Bootstrap, istio.mesh.v1alpha1.MeshConfig): an unknown field, a
// wrong type or a bad enum name is an error. Then every message passes its protoc-gen-validate
// rules (ValidateAll) — the bootstrap and, recursively, each typed config (Any) inside it,
// which ValidateAll alone does not open. A deprecated field is an error too: examples should
// not teach what Envoy is about to drop.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	// The typed configs an example may name. protojson resolves an Any's @type through the
	// global registry, so a type is known here only if its package is linked in.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

type validator interface{ ValidateAll() error }

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "bootstrap" && os.Args[1] != "istio-mesh") {
		fmt.Fprintln(os.Stderr, "usage: envoy-validate bootstrap|istio-mesh FILE...")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[2:] {
		var summary string
		var err error
		if os.Args[1] == "bootstrap" {
			summary, err = checkBootstrap(file)
		} else {
			summary, err = checkMesh(file)
		}
		if err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "%s: INVALID\n%v\n", file, err)
			continue
		}
		fmt.Printf("%s: valid %s\n", file, summary)
	}
	if failed {
		os.Exit(1)
	}
}

func readJSON(file string) ([]byte, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	return js, nil
}

func checkBootstrap(file string) (string, error) {
	js, err := readJSON(file)
	if err != nil {
		return "", err
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		return "", fmt.Errorf("not a valid envoy.config.bootstrap.v3.Bootstrap: %w", err)
	}
	seen := map[string]int{}
	if errs := validateTree(&b, "bootstrap", seen); len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return fmt.Sprintf("envoy.config.bootstrap.v3.Bootstrap; typed configs checked: %s", describe(seen)), nil
}

func checkMesh(file string) (string, error) {
	js, err := readJSON(file)
	if err != nil {
		return "", err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return "", err
	}
	mesh := any(doc)
	if doc["kind"] == "IstioOperator" {
		spec, _ := doc["spec"].(map[string]any)
		if spec == nil || spec["meshConfig"] == nil {
			return "", errors.New("an IstioOperator without spec.meshConfig")
		}
		mesh = spec["meshConfig"]
	}
	meshJSON, err := yaml.Marshal(mesh)
	if err != nil {
		return "", err
	}
	if meshJSON, err = yaml.YAMLToJSON(meshJSON); err != nil {
		return "", err
	}
	var m meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(meshJSON, &m); err != nil {
		return "", fmt.Errorf("not a valid istio.mesh.v1alpha1.MeshConfig: %w", err)
	}
	if errs := validateTree(&m, "meshConfig", map[string]int{}); len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	names := []string{}
	for _, p := range m.GetExtensionProviders() {
		names = append(names, p.GetName())
	}
	return fmt.Sprintf("istio.mesh.v1alpha1.MeshConfig; extension providers: %s", strings.Join(names, ", ")), nil
}

// validateTree runs the message's own rules, then opens every Any inside it and does the same.
func validateTree(m proto.Message, path string, seen map[string]int) []error {
	var errs []error
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	walk(m.ProtoReflect(), path, func(fd protoreflect.FieldDescriptor, p string) {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			errs = append(errs, fmt.Errorf("%s: field %s is deprecated", p, fd.FullName()))
		}
	}, func(a *anypb.Any, p string) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: typed config %s cannot be read: %w (a type envoy-validate does not link in is reported here too)", p, a.GetTypeUrl(), err))
			return
		}
		seen[string(inner.ProtoReflect().Descriptor().FullName())]++
		errs = append(errs, validateTree(inner, fmt.Sprintf("%s(%s)", p, inner.ProtoReflect().Descriptor().FullName()), seen)...)
	})
	return errs
}

// walk visits every set field below m, calling onField for each and onAny for each Any.
func walk(m protoreflect.Message, path string, onField func(protoreflect.FieldDescriptor, string), onAny func(*anypb.Any, string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		onField(fd, p)
		visit := func(msg protoreflect.Message, at string) {
			if a, ok := msg.Interface().(*anypb.Any); ok {
				onAny(a, at)
				return
			}
			walk(msg, at, onField, onAny)
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()))
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			visit(v.Message(), p)
		}
		return true
	})
}

func describe(seen map[string]int) string {
	if len(seen) == 0 {
		return "none"
	}
	names := make([]string, 0, len(seen))
	for n, c := range seen {
		names = append(names, fmt.Sprintf("%s ×%d", n, c))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
