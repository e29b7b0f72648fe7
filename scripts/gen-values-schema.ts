// Generates helm/mcp-authz/values.schema.json: the chart's own values, hand-described here,
// and the `config` block generated from the service's zod config schema, so `helm install`
// refuses a config the service would refuse to start with (as far as JSON Schema can say).
// Run: npm run gen:values-schema. A test fails when the committed file is out of date.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigSchema } from '../src/config/schema.js';

export const VALUES_SCHEMA_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'helm',
  'mcp-authz',
  'values.schema.json',
);

type Json = Record<string, unknown>;

const serviceSchema = (): Json => z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Json;
const at = (schema: Json, ...path: string[]): Json =>
  path.reduce((node, key) => (node as Record<string, Json>)[key]!, schema);

/**
 * The service config schema as the chart accepts it: `listen` is derived from containerPorts,
 * secrets come from Secrets (the Redis URL from `redis`, key entries from `apiKeys`), and
 * what zod checks in code (an endpoint match must name a path prefix or a host) is spelled
 * out for JSON Schema.
 */
function configSchema(): Json {
  const schema = serviceSchema();
  delete schema.$schema;
  const properties = { ...(schema.properties as Json) };
  delete properties.listen;

  const match = at(properties, 'endpoints', 'items', 'properties', 'match');
  match.anyOf = [{ required: ['pathPrefix'] }, { required: ['host'] }];
  match.description = 'set pathPrefix, host, or both';

  const redis = at(properties, 'rateLimit', 'properties', 'redis');
  delete (redis.properties as Json).url;
  delete redis.required;
  redis.description =
    'everything but the URL, which may carry a password, so it is set with redis.url or redis.existingSecret and reaches the pod from a Secret; cluster: true makes that URL a seed node of a Redis Cluster';

  const pg = at(properties, 'stores', 'properties', 'postgres');
  delete (pg.properties as Json).passwordFile;
  pg.description =
    'the connection without its password (url: postgres://user@host/db); the password comes from postgres.passwordSecret, mounted by the chart';

  const tls = at(properties, 'tls');
  for (const file of ['certFile', 'keyFile', 'clientCaFile']) delete (tls.properties as Json)[file];
  delete tls.required;
  tls.description =
    'what each port serves (grpc, extAuthzHttp, http: off, tls, mtls) and the poll interval; the files come from the tls Secret, mounted by the chart';

  const pins = at(properties, 'pins');
  delete (pins.properties as Json).redis;
  delete pins.required;
  pins.description =
    'pollIntervalMs only, or file for a pins file of your own mount: the chart mounts pins.content or pins.existingConfigMap and sets file; replicas share pin state through the redis values (rateLimit.redis)';

  const apiKeys = at(properties, 'apiKeys');
  delete (apiKeys.properties as Json).keys;
  apiKeys.description = 'key entries go in apiKeys.keys or apiKeys.existingSecret (a Secret), not in the config';

  return {
    ...schema,
    description: 'The mcp-authz service configuration (listen is set by the chart from containerPorts).',
    properties,
  };
}

/** Registry entries exactly as the service validates them. */
function apiKeyEntry(): Json {
  const entry = structuredClone(at(serviceSchema(), 'properties', 'apiKeys', 'properties', 'keys', 'items'));
  at(entry, 'properties', 'sha256').description = 'hex SHA-256 of the key; never the key itself';
  return entry;
}

/** extraEnv entries: the secret variables only by reference (valueFrom), never as a value in the Deployment. */
const extraEnv = {
  type: 'array',
  items: {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string', minLength: 1 } },
    if: { properties: { name: { enum: ['MCP_API_KEYS', 'MCP_REDIS_URL'] } } },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword
    then: {
      required: ['valueFrom'],
      not: { required: ['value'] },
      description: 'a secret: use valueFrom.secretKeyRef',
    },
  },
};

const str = { type: 'string' };
const bool = { type: 'boolean' };
const obj = { type: 'object' };
const arr = { type: 'array' };
const port = { type: 'integer', minimum: 1, maximum: 65535 };
const nonNegInt = { type: 'integer', minimum: 0 };
const strictObject = (properties: Json, extra: Json = {}): Json => ({
  type: 'object',
  additionalProperties: false,
  properties,
  ...extra,
});
const probe = strictObject({
  enabled: bool,
  initialDelaySeconds: nonNegInt,
  periodSeconds: { type: 'integer', minimum: 1 },
  timeoutSeconds: { type: 'integer', minimum: 1 },
  failureThreshold: { type: 'integer', minimum: 1 },
  successThreshold: { type: 'integer', minimum: 1 },
});

export function buildValuesSchema(): Json {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'mcp-authz Helm values',
    type: 'object',
    additionalProperties: false,
    properties: {
      global: obj,
      config: configSchema(),
      workers: { type: 'integer', minimum: 1, description: 'worker processes per pod (serve --workers)' },
      apiKeys: strictObject({
        keys: { type: 'array', items: apiKeyEntry() },
        existingSecret: str,
        secretKey: { type: 'string', minLength: 1 },
      }),
      pins: strictObject({
        content: obj,
        existingConfigMap: str,
        configMapKey: { type: 'string', minLength: 1 },
      }),
      upstreamCredentials: strictObject({
        secrets: {
          type: 'array',
          items: {
            type: 'string',
            pattern: '^[a-z0-9]([-a-z0-9]{0,43}[a-z0-9])?$',
            description: "an existing Secret's name (at most 45 characters: the volume is named upstream-<name>)",
          },
          uniqueItems: true,
        },
      }),
      secretFiles: strictObject({
        secrets: {
          type: 'array',
          items: {
            type: 'string',
            pattern: '^[a-z0-9]([-a-z0-9]{0,44}[a-z0-9])?$',
            description: "an existing Secret's name (at most 46 characters: the volume is named files-<name>)",
          },
          uniqueItems: true,
        },
      }),
      policy: strictObject({
        fileName: { type: 'string', minLength: 1 },
        imageBundle: { type: 'string', pattern: '^/' },
        configMap: strictObject({
          bundleBase64: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
          existingName: str,
        }),
        existingVolume: obj,
      }),
      bundleService: strictObject({ existingSecret: str, mountPath: { type: 'string', pattern: '^/' } }),
      redis: strictObject({
        url: { type: 'string', pattern: '^(|rediss?://.+)$' },
        existingSecret: str,
        existingSecretKey: { type: 'string', minLength: 1 },
      }),
      postgres: strictObject({
        passwordSecret: str,
        passwordSecretKey: { type: 'string', minLength: 1 },
        mountPath: { type: 'string', pattern: '^/' },
      }),
      tls: strictObject({
        secretName: str,
        certKey: { type: 'string', minLength: 1 },
        keyKey: { type: 'string', minLength: 1 },
        clientCaKey: str,
      }),
      extraEnv,
      envFrom: arr,
      extraArgs: { type: 'array', items: str },
      extraVolumes: arr,
      extraVolumeMounts: arr,
      extraObjects: { type: 'array', items: { type: ['object', 'string'] } },
      image: strictObject({
        repository: { type: 'string', minLength: 1 },
        tag: str,
        pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
      }),
      imagePullSecrets: arr,
      nameOverride: str,
      fullnameOverride: str,
      replicaCount: nonNegInt,
      revisionHistoryLimit: nonNegInt,
      containerPorts: strictObject(
        { grpc: port, http: port, extAuthzHttp: { type: 'integer', minimum: 0, maximum: 65535 } },
        { required: ['grpc', 'http'] },
      ),
      service: strictObject({
        type: { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] },
        ports: strictObject({ grpc: port, http: port, extAuthzHttp: port }, { required: ['grpc', 'http'] }),
        annotations: obj,
        labels: obj,
      }),
      serviceAccount: strictObject({ create: bool, name: str, annotations: obj, automountServiceAccountToken: bool }),
      podAnnotations: obj,
      podLabels: obj,
      deploymentAnnotations: obj,
      priorityClassName: str,
      resources: obj,
      podSecurityContext: obj,
      securityContext: obj,
      livenessProbe: probe,
      readinessProbe: probe,
      startupProbe: probe,
      terminationGracePeriodSeconds: nonNegInt,
      nodeSelector: obj,
      tolerations: arr,
      affinity: obj,
      topologySpreadConstraints: arr,
      podDisruptionBudget: strictObject({ enabled: bool, maxUnavailable: { type: ['integer', 'string'] } }),
      autoscaling: strictObject({
        enabled: bool,
        minReplicas: { type: 'integer', minimum: 1 },
        maxReplicas: { type: 'integer', minimum: 1 },
        targetCPUUtilizationPercentage: { type: ['integer', 'null'], minimum: 1 },
        targetMemoryUtilizationPercentage: { type: ['integer', 'null'], minimum: 1 },
      }),
      networkPolicy: strictObject({ enabled: bool, grpcFrom: arr, httpFrom: arr, egress: arr }),
      metrics: strictObject({
        serviceMonitor: strictObject({
          enabled: bool,
          labels: obj,
          interval: str,
          scrapeTimeout: str,
          scheme: { enum: ['', 'http', 'https'] },
          tlsConfig: obj,
          relabelings: arr,
          metricRelabelings: arr,
        }),
        prometheusRule: strictObject({
          enabled: bool,
          labels: obj,
          runbookBaseUrl: { type: 'string', pattern: '^https?://' },
          denyRatio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
          authFailuresPerSecond: { type: 'number', minimum: 0 },
          lockoutsPerSecond: { type: 'number', minimum: 0 },
          p99Seconds: { type: 'number', exclusiveMinimum: 0 },
        }),
        dashboard: strictObject({ enabled: bool, labels: obj, annotations: obj }),
      }),
    },
  };
}

export function renderValuesSchema(): string {
  return JSON.stringify(buildValuesSchema(), null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(VALUES_SCHEMA_FILE, renderValuesSchema());
  process.stdout.write(`wrote ${VALUES_SCHEMA_FILE}\n`);
}
