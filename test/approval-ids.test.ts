// Approval ids come from a pool the CSPRNG refills: across many refills every id is 22
// base64url characters (128 bits) and none repeats.
import test from 'ava';
import { APPROVAL_ID, newApprovalId } from '../src/approvals/approval-service.js';

test('approval ids stay well-formed and distinct across many refills of their random pool', (t) => {
  const seen = new Set<string>();
  // 256 ids per refill: this crosses the pool's end a few hundred times.
  for (let i = 0; i < 100_000; i++) {
    const id = newApprovalId();
    if (!APPROVAL_ID.test(id)) return t.fail(`malformed id ${id}`);
    seen.add(id);
  }
  t.is(seen.size, 100_000);
  // Zeroed bytes handed out again would show as an id of all "A"s.
  t.false(seen.has('AAAAAAAAAAAAAAAAAAAAAA'));
});
