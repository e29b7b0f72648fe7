// Wires the real phases from the config. `serve`, `check` and the tests all build the
// runtime here, so the CLI explains exactly what the server decides.
import type { Registry } from 'prom-client';
import type { LoadedConfig } from '../config/load.js';
import { createRuntime, type Runtime } from '../check/runtime.js';
import type { Logger } from '../log/logger.js';

export async function buildRuntime(loaded: LoadedConfig, logger: Logger, _metrics: Registry): Promise<Runtime> {
  return createRuntime(loaded.config, logger);
}
