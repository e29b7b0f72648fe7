package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// How the CheckRequest becomes the policy's input document.
const (
	// inputProtoMap walks the message with protobuf reflection into a map keyed by JSON
	// field names: what opa-envoy-plugin has done for v3 requests since early 2025
	// (the release line benchmarked here, v1.19.x, included).
	inputProtoMap = "protomap"
	// inputProtoJSON marshals with protojson and decodes the JSON: what older releases
	// did, and what the `version.encoding` field still names.
	inputProtoJSON = "protojson"
)

// The `version` field the plugin adds to every v3 input. A prebuilt AST object, as the
// plugin keeps it, so it is not converted again per request.
var versionV3 = ast.NewObject(
	[2]*ast.Term{ast.StringTerm("ext_authz"), ast.StringTerm("v3")},
	[2]*ast.Term{ast.StringTerm("encoding"), ast.StringTerm("protojson")},
)

const partialBodyHeader = "x-envoy-auth-partial-body"

var errNoHTTPAttributes = errors.New("the CheckRequest has no attributes.request.http")

// requestToInput builds the input document opa-envoy-plugin hands its policy for one
// v3 CheckRequest: the request itself under its JSON field names, then version,
// parsed_path, parsed_query, parsed_body and truncated_body (and source_principal when
// the peer has one).
func requestToInput(req *authv3.CheckRequest, mode string) (map[string]any, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return nil, errNoHTTPAttributes
	}

	var input map[string]any
	switch mode {
	case inputProtoJSON:
		bs, err := protojson.Marshal(req)
		if err != nil {
			return nil, err
		}
		if err := util.UnmarshalJSON(bs, &input); err != nil {
			return nil, err
		}
	default:
		input = messageToMap(req.ProtoReflect())
	}

	input["version"] = versionV3

	segments, query, err := splitPath(httpReq.GetPath())
	if err != nil {
		return nil, fmt.Errorf("parsing the path: %w", err)
	}
	input["parsed_path"] = segments
	input["parsed_query"] = query

	body, truncated, err := parseBody(httpReq.GetHeaders(), httpReq.GetBody(), httpReq.GetRawBody())
	if err != nil {
		return nil, fmt.Errorf("parsing the body: %w", err)
	}
	input["parsed_body"] = body
	input["truncated_body"] = truncated

	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		input["source_principal"] = p
	}
	return input, nil
}

// messageToMap turns a protobuf message into nested Go maps keyed by JSON field names.
// Only populated fields appear. Scalars keep their Go types (int64, uint32, []byte,
// enum numbers); ast.InterfaceToValue converts those later. google.protobuf.Struct
// becomes its plain map; other well-known types (Timestamp, ...) are walked like any
// message, so a Timestamp is {"seconds": ..., "nanos": ...}, not an RFC 3339 string.
func messageToMap(m protoreflect.Message) map[string]any {
	if s, ok := m.Interface().(interface{ AsMap() map[string]any }); ok {
		return s.AsMap()
	}
	out := make(map[string]any, m.Descriptor().Fields().Len())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out[fd.JSONName()] = fieldValue(fd, v)
		return true
	})
	return out
}

func fieldValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch {
	case fd.IsMap():
		src := v.Map()
		dst := make(map[string]any, src.Len())
		isMsg := fd.MapValue().Kind() == protoreflect.MessageKind
		src.Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
			if isMsg {
				dst[k.String()] = messageToMap(e.Message())
			} else {
				dst[k.String()] = e.Interface()
			}
			return true
		})
		return dst
	case fd.IsList():
		src := v.List()
		dst := make([]any, src.Len())
		isMsg := fd.Kind() == protoreflect.MessageKind
		for i := range dst {
			if isMsg {
				dst[i] = messageToMap(src.Get(i).Message())
			} else {
				dst[i] = src.Get(i).Interface()
			}
		}
		return dst
	case fd.Kind() == protoreflect.MessageKind:
		return messageToMap(v.Message())
	default:
		return v.Interface()
	}
}

// splitPath returns the percent-decoded path split on "/" (the leading "/" dropped, so
// "/mcp/files" is ["mcp", "files"]) and the query string as a map of value arrays.
func splitPath(path string) ([]string, map[string]any, error) {
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, nil, err
	}
	segments := strings.Split(strings.TrimLeft(decoded, "/"), "/")

	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, nil, err
	}
	query := make(map[string]any, len(values))
	for k, vs := range values {
		query[k] = vs
	}
	return segments, query, nil
}

// parseBody decodes a JSON body (from `body`, or `raw_body` when Envoy packs bytes).
// A body Envoy marked partial, or one shorter than its content-length, is reported as
// truncated and not parsed. Other content types are left unparsed (nil).
func parseBody(headers map[string]string, body string, raw []byte) (any, bool, error) {
	if headers[partialBodyHeader] == "true" {
		return nil, true, nil
	}
	ct, ok := headers["content-type"]
	if !ok || !strings.Contains(ct, "application/json") {
		return nil, false, nil
	}
	if body == "" {
		if len(raw) == 0 {
			return nil, false, nil
		}
		body = string(raw)
	}
	if cl, ok := headers["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, false, err
		}
		if n != -1 && n > int64(len(body)) {
			return nil, true, nil
		}
	}
	var v any
	if err := util.UnmarshalJSON([]byte(body), &v); err != nil {
		return nil, false, err
	}
	return v, false, nil
}
