// A real browser for the flows a person clicks through: Debian's chromium
// (scripts/install-tools.sh chromium), driven by playwright-core, headless, with a fresh
// profile per launch. The flags keep Chromium from opening connections of its own (updates,
// sync, field trials, QUIC): on a machine without outside network those are refused, and
// nothing a test does should depend on them.
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** $CHROMIUM, else `chromium` on PATH, else `google-chrome` (what a hosted CI runner has). */
function findChromium(): string {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'google-chrome']) {
    for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // not here
      }
    }
  }
  return '/usr/bin/chromium';
}

export const CHROMIUM = findChromium();

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

export interface TestBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Launches chromium with a fresh user data dir (playwright passes it as --user-data-dir). */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'mcp-authz-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS],
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw new Error(
      `could not start ${CHROMIUM} (install it with scripts/install-tools.sh chromium): ${(err as Error).message}`,
    );
  }
  return {
    context,
    newPage: () => context.newPage(),
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
