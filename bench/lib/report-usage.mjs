// Preloaded (node --import) into a process the scale benchmark measures: at exit, its own
// peak RSS and CPU as one JSON line on stderr, read with no sampling gap.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  const u = process.resourceUsage();
  writeSync(
    2,
    `\n__usage__${JSON.stringify({ maxRssKiB: u.maxRSS, userUs: u.userCPUTime, systemUs: u.systemCPUTime })}\n`,
  );
});
