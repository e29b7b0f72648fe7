// Watches every decision a test service makes: a deny whose code is not in the catalogue
// (src/contracts/codes.ts) — and that the policy did not choose — is recorded, and the test
// service's stop() fails on it; so is a withheld list response's reason outside the catalogue. So every test that drives the real service (red team, e2e,
// auth modes, policies, limits) also proves that nothing answers with an unlisted code.
import type { CheckTrace, ListTrace } from '../../src/decision/context.js';
import type { Observer } from '../../src/decision/phases.js';
import { CODES, WITHHELD_REASONS } from '../../src/contracts/codes.js';

export class CatalogueObserver implements Observer {
  /** "code (status, endpoint)" of every unlisted code produced. */
  readonly unlisted: string[] = [];
  /** Every code produced (denies and answers), for tests that look. */
  readonly seen = new Set<string>();

  constructor(private readonly allowed: readonly string[] = []) {}

  decided({ outcome, ctx, policy }: CheckTrace): void {
    if (outcome.kind === 'allow') return;
    this.seen.add(outcome.code);
    if (Object.hasOwn(CODES, outcome.code) || this.allowed.includes(outcome.code)) return;
    // A policy may choose its own code: only a deny of the policy's own rules may carry one.
    if (outcome.kind === 'deny' && policy !== undefined && policy.decision === 'deny' && !policy.failed) return;
    this.unlisted.push(`${outcome.code} (${outcome.status}, ${ctx?.endpoint?.name ?? 'no endpoint'})`);
  }

  /** A withheld list's reason must be one of the catalogue's withheld reasons. */
  listed({ reason, ctx }: ListTrace): void {
    if (reason === undefined) return;
    this.seen.add(reason);
    if (!Object.hasOwn(WITHHELD_REASONS, reason))
      this.unlisted.push(`${reason} (withheld list, ${ctx.endpoint?.name ?? 'no endpoint'})`);
  }

  /** Throws naming every unlisted code produced. */
  assertListed(): void {
    if (this.unlisted.length > 0)
      throw new Error(`decision codes not in src/contracts/codes.ts were produced: ${this.unlisted.join(', ')}`);
  }
}
