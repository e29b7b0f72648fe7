package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// decisionToResponse maps the policy's decision to Envoy's answer the way opa-envoy-plugin
// does:
//   - a boolean: OK or PERMISSION_DENIED, with no HTTP response (Envoy answers a denial
//     with 403 by itself);
//   - an object: `allowed` (required boolean) picks OK or PERMISSION_DENIED; `headers`
//     go on either response; when allowed, `request_headers_to_remove`,
//     `response_headers_to_add`, `query_parameters_to_remove` and `query_parameters_to_set`
//     shape the OkHttpResponse; when denied, `http_status` (default 403) and `body` shape
//     the DeniedHttpResponse; `dynamic_metadata` becomes the response's dynamic metadata.
//
// A decision of any other shape, or a malformed field, is an error.
func decisionToResponse(decision any) (*authv3.CheckResponse, error) {
	switch d := decision.(type) {
	case bool:
		c := code.Code_PERMISSION_DENIED
		if d {
			c = code.Code_OK
		}
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(c)}}, nil
	case map[string]any:
		return objectToResponse(d)
	default:
		return nil, fmt.Errorf("illegal value for policy evaluation result: %T", decision)
	}
}

func objectToResponse(d map[string]any) (*authv3.CheckResponse, error) {
	v, ok := d["allowed"]
	if !ok {
		return nil, fmt.Errorf(`unable to determine evaluation result due to missing "allowed" key`)
	}
	allowed, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("expected allowed to be a boolean, got %T", v)
	}

	headers, err := headerOptions(d, "headers")
	if err != nil {
		return nil, err
	}
	resp := &authv3.CheckResponse{}
	if md, ok := d["dynamic_metadata"]; ok {
		obj, ok := md.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected dynamic_metadata to be an object, got %T", md)
		}
		if resp.DynamicMetadata, err = structpb.NewStruct(obj); err != nil {
			return nil, fmt.Errorf("dynamic_metadata: %w", err)
		}
	}

	if allowed {
		resp.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		okResp := &authv3.OkHttpResponse{Headers: headers}
		if okResp.HeadersToRemove, err = stringsField(d, "request_headers_to_remove"); err != nil {
			return nil, err
		}
		if okResp.ResponseHeadersToAdd, err = headerOptions(d, "response_headers_to_add"); err != nil {
			return nil, err
		}
		if okResp.QueryParametersToRemove, err = stringsField(d, "query_parameters_to_remove"); err != nil {
			return nil, err
		}
		if okResp.QueryParametersToSet, err = queryParameters(d, "query_parameters_to_set"); err != nil {
			return nil, err
		}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: okResp}
		return resp, nil
	}

	resp.Status = &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)}
	denied := &authv3.DeniedHttpResponse{Headers: headers}
	if b, ok := d["body"]; ok {
		if denied.Body, ok = b.(string); !ok {
			return nil, fmt.Errorf("expected body to be a string, got %T", b)
		}
	}
	status, err := httpStatus(d)
	if err != nil {
		return nil, err
	}
	denied.Status = &typev3.HttpStatus{Code: typev3.StatusCode(status)}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied}
	return resp, nil
}

// httpStatus reads `http_status`: 403 when absent; a number that is both a known HTTP
// status and one of Envoy's StatusCode values otherwise.
func httpStatus(d map[string]any) (int32, error) {
	v, ok := d["http_status"]
	if !ok {
		return http.StatusForbidden, nil
	}
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return 0, fmt.Errorf("http_status: %w", err)
		}
		n = i
	default:
		return 0, fmt.Errorf("expected http_status to be a number, got %T", v)
	}
	if http.StatusText(int(n)) == "" {
		return 0, fmt.Errorf("invalid HTTP status code %d", n)
	}
	if _, ok := typev3.StatusCode_name[int32(n)]; !ok {
		return 0, fmt.Errorf("invalid HTTP status code %d", n)
	}
	return int32(n), nil
}

// headerOptions reads a header field: an object of name → string or array of strings,
// or an array of such objects.
func headerOptions(d map[string]any, field string) ([]*corev3.HeaderValueOption, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	var out []*corev3.HeaderValueOption
	add := func(obj map[string]any) error {
		for k, val := range obj {
			switch x := val.(type) {
			case string:
				out = append(out, headerOption(k, x))
			case []any:
				for _, e := range x {
					s, ok := e.(string)
					if !ok {
						return fmt.Errorf("%s: invalid value type %T for header %q", field, e, k)
					}
					out = append(out, headerOption(k, s))
				}
			default:
				return fmt.Errorf("%s: invalid value type %T for header %q", field, val, k)
			}
		}
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		out = make([]*corev3.HeaderValueOption, 0, len(x))
		if err := add(x); err != nil {
			return nil, err
		}
	case []any:
		for _, e := range x {
			obj, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("expected %s to be objects, got %T", field, e)
			}
			if err := add(obj); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("expected %s to be an object, got %T", field, v)
	}
	return out, nil
}

func headerOption(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

func stringsField(d map[string]any, field string) ([]string, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected %s to be an array of strings, got %T", field, v)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("expected %s values to be strings, got %T", field, e)
		}
		out[i] = s
	}
	return out, nil
}

func queryParameters(d map[string]any, field string) ([]*corev3.QueryParameter, error) {
	v, ok := d[field]
	if !ok {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected %s to be an object, got %T", field, v)
	}
	out := make([]*corev3.QueryParameter, 0, len(obj))
	for k, val := range obj {
		switch x := val.(type) {
		case string:
			out = append(out, &corev3.QueryParameter{Key: k, Value: x})
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s: expected strings for %q, got %T", field, k, e)
				}
				out = append(out, &corev3.QueryParameter{Key: k, Value: s})
			}
		default:
			return nil, fmt.Errorf("%s: expected a string or array for %q, got %T", field, k, val)
		}
	}
	return out, nil
}

// deniedResponse is the answer when no decision could be made (undefined, an evaluation
// error, a malformed decision): PERMISSION_DENIED with the given HTTP status.
func deniedResponse(status typev3.StatusCode, msg string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED), Message: msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: status},
			Body:   msg,
		}},
	}
}
