#!/usr/bin/env node
// Release notes and version checks for .github/workflows/release.yml.
//   node scripts/release-notes.mjs vX.Y.Z          CHANGELOG.md's section for X.Y.Z, on stdout
//   node scripts/release-notes.mjs --check vX.Y.Z  exit 1 unless the tag is semver and package.json's
//                                                  version, the chart's version and appVersion are
//                                                  X.Y.Z and CHANGELOG.md has a section for it;
//                                                  prints X.Y.Z
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SEMVER = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

/** The version a tag names (v1.2.3 → 1.2.3), or an error. */
export function versionOfTag(tag) {
  if (!SEMVER.test(tag))
    throw new Error(`tag ${JSON.stringify(tag)} is not v<major>.<minor>.<patch>[-<prerelease>] (semver)`);
  return tag.slice(1);
}

/** The body of CHANGELOG.md's `## [version]` section (Keep a Changelog), without its heading. */
export function changelogSection(text, version) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`## [${version}]`));
  if (start < 0)
    throw new Error(
      `CHANGELOG.md has no "## [${version}]" section: move the Unreleased entries under one before tagging`,
    );
  let end = lines.findIndex((l, i) => i > start && /^## \[/.test(l));
  if (end < 0) end = lines.length;
  const body = lines
    .slice(start + 1, end)
    .filter((l) => !/^\[[^\]]+\]: /.test(l))
    .join('\n')
    .trim();
  if (!body) throw new Error(`CHANGELOG.md's section for ${version} is empty`);
  return body;
}

/** The chart's `key: value` (Chart.yaml is flat where these keys are). */
function chartField(chart, key) {
  const m = new RegExp(`^${key}:\\s*"?([^"\\n]+?)"?\\s*$`, 'm').exec(chart);
  return m?.[1];
}

/** Every place the version must agree for a release of `tag`; the problems found. */
export function releaseProblems(root, tag) {
  const problems = [];
  let version;
  try {
    version = versionOfTag(tag);
  } catch (err) {
    return [err.message];
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (pkg.version !== version) problems.push(`package.json version is ${pkg.version}, the tag says ${version}`);
  const chart = readFileSync(join(root, 'helm', 'mcp-authz', 'Chart.yaml'), 'utf8');
  for (const key of ['version', 'appVersion']) {
    if (chartField(chart, key) !== version)
      problems.push(`helm/mcp-authz/Chart.yaml ${key} is ${chartField(chart, key)}, the tag says ${version}`);
  }
  try {
    changelogSection(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), version);
  } catch (err) {
    problems.push(err.message);
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const args = process.argv.slice(2);
  const check = args[0] === '--check';
  const tag = check ? args[1] : args[0];
  if (!tag) {
    process.stderr.write('usage: release-notes.mjs [--check] vX.Y.Z\n');
    process.exit(2);
  }
  try {
    if (check) {
      const problems = releaseProblems(root, tag);
      if (problems.length) throw new Error(`cannot release ${tag}:\n  ${problems.join('\n  ')}`);
      process.stdout.write(`${versionOfTag(tag)}\n`);
    } else {
      process.stdout.write(
        `${changelogSection(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), versionOfTag(tag))}\n`,
      );
    }
  } catch (err) {
    process.stderr.write(`release-notes: ${err.message}\n`);
    process.exit(1);
  }
}
