import { collectDefaultMetrics, Registry } from 'prom-client';

/** The service's prom-client registry, with the process/Node defaults. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
