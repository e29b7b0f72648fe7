// envoy.service.ext_proc.v3 messages as plain objects: proto field names, bytes as Buffer or
// Uint8Array, enums by name, a oneof as the one field that is set (proto-loader's extra
// `request`/`response` discriminator may be present and is not needed). This is the form
// the ext_proc session reads and writes, whatever gRPC server carries the stream.
// Field numbers: envoy/service/ext_proc/v3/external_processor.proto and
// envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto.

export type Bytes = Buffer | Uint8Array;

export interface WireHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Bytes;
}

export interface WireHttpHeaders {
  headers?: { headers?: WireHeaderValue[] };
  end_of_stream?: boolean;
}

export interface WireHttpBody {
  body?: Bytes;
  end_of_stream?: boolean;
}

/** google.protobuf.Struct in proto-loader's object form. */
export interface WireStruct {
  fields?: Record<string, { stringValue?: string; [kind: string]: unknown }>;
}

export interface ProcessingRequest {
  request?: string;
  request_headers?: WireHttpHeaders;
  response_headers?: WireHttpHeaders;
  request_body?: WireHttpBody;
  response_body?: WireHttpBody;
  request_trailers?: { trailers?: unknown };
  response_trailers?: { trailers?: unknown };
  /** Envoy's request_attributes, keyed by the filter's name ("envoy.filters.http.ext_proc"). */
  attributes?: Record<string, WireStruct>;
  metadata_context?: unknown;
  observability_mode?: boolean;
}

export interface WireHeaderValueOption {
  header: { key: string; raw_value: Buffer };
  /** BoolValue: true adds a value, false replaces every value (ext_proc ignores append_action). */
  append: { value: boolean };
}

export interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}

export interface WireCommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: WireHeaderMutation;
  body_mutation?: { body: Buffer } | { clear_body: true };
}

export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';
export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL';

export interface WireProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
}

export interface WireImmediateResponse {
  /** envoy.type.v3.HttpStatus; the code as a number. */
  status: { code: number };
  headers?: WireHeaderMutation;
  body?: Buffer;
  details?: string;
}

/** Exactly one of the answer fields is set. */
export interface ProcessingResponse {
  request_headers?: { response?: WireCommonResponse };
  response_headers?: { response?: WireCommonResponse };
  request_body?: { response?: WireCommonResponse };
  response_body?: { response?: WireCommonResponse };
  request_trailers?: Record<string, never>;
  response_trailers?: Record<string, never>;
  immediate_response?: WireImmediateResponse;
  mode_override?: WireProcessingMode;
  dynamic_metadata?: Record<string, unknown>;
}
